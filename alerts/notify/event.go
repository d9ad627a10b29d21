package notify

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"time"

	"github.com/edged-io/edged/wal"
)

// Event is one alert state transition (or renotification) to deliver. It
// mirrors the alert engine's event.
type Event struct {
	Rule, Device, Series string
	// State is "pending", "firing", "resolved" or "inactive".
	State            string
	Value, Threshold float64
	Severity         string
	// Labels are read, never modified.
	Labels map[string]string
	// Started and Resolved are Unix nanoseconds; 0 means unknown / not
	// resolved.
	Started, Resolved int64
	// ID is the same for every event of one alert cycle.
	ID       string
	Renotify bool
	// LSN and Seq order all events strictly: the input record's LSN and
	// the event's number among those it produced.
	LSN uint64
	Seq uint32
}

// payload is an event's JSON form on the wire.
type payload struct {
	Rule      string            `json:"rule"`
	Device    string            `json:"device"`
	Series    string            `json:"series"`
	State     string            `json:"state"`
	Value     *float64          `json:"value"`
	Threshold *float64          `json:"threshold"`
	Severity  string            `json:"severity"`
	Labels    map[string]string `json:"labels"`
	Started   string            `json:"started,omitempty"`
	Resolved  string            `json:"resolved,omitempty"`
	EventID   string            `json:"event_id"`
	Renotify  bool              `json:"renotify"`
}

// encode returns the event's payload; device is the resolved device id.
func encode(e *Event, device string) []byte {
	p := payload{
		Rule: e.Rule, Device: device, Series: e.Series, State: e.State,
		Value: finite(e.Value), Threshold: finite(e.Threshold), Severity: e.Severity,
		Labels: e.Labels, Started: timestamp(e.Started), Resolved: timestamp(e.Resolved),
		EventID: e.ID, Renotify: e.Renotify,
	}
	if p.Labels == nil {
		p.Labels = map[string]string{}
	}
	b, err := json.Marshal(p)
	if err != nil {
		panic("notify: encoding an event: " + err.Error()) // strings, finite floats and bools only
	}
	return b
}

// finite returns nil (JSON null) for NaN and ±Inf, which JSON cannot carry.
func finite(v float64) *float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return nil
	}
	return &v
}

func timestamp(ns int64) string {
	if ns == 0 {
		return ""
	}
	return time.Unix(0, ns).UTC().Format(time.RFC3339Nano)
}

// markFile is the name of the delivered mark's file in Options.StateDir.
const markFile = "alerts-delivered"

// mark is a position in the (LSN, Seq) order of events.
type mark struct {
	LSN uint64 `json:"lsn"`
	Seq uint32 `json:"seq"`
	ok  bool   // false: no event delivered yet
}

// covers reports whether the event at (lsn, seq) is at or before m.
func (m mark) covers(lsn uint64, seq uint32) bool {
	return m.ok && (lsn < m.LSN || lsn == m.LSN && seq <= m.Seq)
}

// advance returns the later of m and (lsn, seq).
func (m mark) advance(lsn uint64, seq uint32) mark {
	if m.covers(lsn, seq) {
		return m
	}
	return mark{LSN: lsn, Seq: seq, ok: true}
}

// loadMark reads the mark saved in dir; a missing file is no mark.
func loadMark(dir string) (mark, error) {
	if dir == "" {
		return mark{}, nil
	}
	path := filepath.Join(dir, markFile)
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return mark{}, nil
	}
	if err != nil {
		return mark{}, fmt.Errorf("notify: reading the delivered mark: %w", err)
	}
	var m mark
	if err := json.Unmarshal(b, &m); err != nil {
		return mark{}, fmt.Errorf("notify: %s is corrupt (%v); delete it to have the alerts the log replays announced again", path, err)
	}
	m.ok = true
	return m, nil
}

// saveMark replaces the mark saved in dir atomically.
func saveMark(dir string, m mark) error {
	b, _ := json.Marshal(m)
	if err := wal.WriteFileAtomic(wal.OSFS{}, filepath.Join(dir, markFile), append(b, '\n')); err != nil {
		return fmt.Errorf("notify: saving the delivered mark: %w", err)
	}
	return nil
}
