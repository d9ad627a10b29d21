package replay

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/edged-io/edged"
	"github.com/edged-io/edged/aggregate"
	"github.com/edged-io/edged/aggregate/stream"
	"github.com/edged-io/edged/alerts"
)

// AlertReport runs an alert engine beside the replay's aggregator (a
// stream.Observer: same readings, windows and ticks, in log order) and
// writes its transitions to a file as JSON lines instead of publishing
// them. Its state is checkpointed with the replay's; a resumed replay
// first cuts the file back to the checkpoint and skips the transitions
// the file already holds (events are ordered by LSN and Seq), so the file
// ends up as an uninterrupted replay writes it.
type AlertReport struct {
	eng    *alerts.Engine
	f      *os.File
	w      *bufio.Writer
	last   [2]uint64 // (LSN, Seq) of the last event in the file
	events uint64
	err    error
	emitF  func(alerts.Event)
}

var _ stream.Observer = (*AlertReport)(nil)

// ReportLine is one line of the report.
type ReportLine struct {
	Rule      string            `json:"rule"`
	Device    string            `json:"device"`
	Series    string            `json:"series"`
	State     string            `json:"state"`
	Value     float64           `json:"value"`
	Threshold float64           `json:"threshold"`
	Severity  string            `json:"severity,omitempty"`
	Labels    map[string]string `json:"labels,omitempty"`
	Started   time.Time         `json:"started"`
	Resolved  *time.Time        `json:"resolved,omitempty"`
	EventID   string            `json:"event_id"`
	Renotify  bool              `json:"renotify,omitempty"`
	LSN       uint64            `json:"lsn"`
	Seq       uint32            `json:"seq"`
}

// OpenAlertReport opens (creating) the report at path for an engine whose
// checkpointed state covers the log through LSN through: lines after it
// are dropped.
func OpenAlertReport(path string, eng *alerts.Engine, through uint64) (*AlertReport, error) {
	old, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("replay: alerts report: %w", err)
	}
	r := &AlertReport{eng: eng}
	r.emitF = r.emit
	var keep []byte
	for line := range bytes.Lines(old) {
		var l ReportLine
		if json.Unmarshal(line, &l) != nil || l.LSN > through || !bytes.HasSuffix(line, []byte("\n")) {
			break
		}
		keep = append(keep, line...)
		r.last = [2]uint64{l.LSN, uint64(l.Seq)}
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("replay: alerts report: %w", err)
	}
	if err := f.Truncate(int64(len(keep))); err != nil {
		f.Close()
		return nil, fmt.Errorf("replay: alerts report: %w", err)
	}
	if _, err := f.Seek(int64(len(keep)), 0); err != nil {
		f.Close()
		return nil, fmt.Errorf("replay: alerts report: %w", err)
	}
	r.f, r.w = f, bufio.NewWriterSize(f, 64<<10)
	return r, nil
}

func (r *AlertReport) emit(e alerts.Event) {
	if r.last != [2]uint64{} && (e.LSN < r.last[0] || e.LSN == r.last[0] && uint64(e.Seq) <= r.last[1]) {
		return // already in the file
	}
	l := ReportLine{Rule: e.Rule, Device: e.Device, Series: e.Series, State: e.State, Value: e.Value, Threshold: e.Threshold,
		Severity: e.Severity, Labels: e.Labels, Started: time.Unix(0, e.Started).UTC(), EventID: e.ID, Renotify: e.Renotify,
		LSN: e.LSN, Seq: e.Seq}
	if e.Resolved != 0 {
		t := time.Unix(0, e.Resolved).UTC()
		l.Resolved = &t
	}
	b, err := json.Marshal(l)
	if err == nil {
		_, err = r.w.Write(append(b, '\n'))
	}
	if err != nil && r.err == nil {
		r.err = err
	}
	r.events++
}

func (r *AlertReport) Reading(x *edged.Reading)       { r.eng.Reading(x, r.emitF) }
func (r *AlertReport) Window(w *aggregate.Window)     { r.eng.Window(w, r.emitF) }
func (r *AlertReport) Tick(now int64, lsn uint64)     { r.eng.Tick(now, lsn, r.emitF) }
func (r *AlertReport) UnmarshalBinary(b []byte) error { return r.eng.UnmarshalBinary(b) }

// MarshalBinary is called when the replay checkpoints: the lines so far
// are made durable first, since the checkpoint means they will not be
// emitted again.
func (r *AlertReport) MarshalBinary() ([]byte, error) {
	if err := r.sync(); err != nil {
		return nil, err
	}
	return r.eng.MarshalBinary()
}

func (r *AlertReport) sync() error {
	if r.err != nil {
		return fmt.Errorf("replay: alerts report: %w", r.err)
	}
	if err := r.w.Flush(); err != nil {
		return fmt.Errorf("replay: alerts report: %w", err)
	}
	if err := r.f.Sync(); err != nil {
		return fmt.Errorf("replay: alerts report: %w", err)
	}
	return nil
}

// Events counts the transitions written by this run.
func (r *AlertReport) Events() uint64 { return r.events }

// Close flushes and closes the file.
func (r *AlertReport) Close() error {
	err := r.sync()
	if cerr := r.f.Close(); err == nil {
		err = cerr
	}
	return err
}
