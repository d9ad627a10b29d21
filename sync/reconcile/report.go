package reconcile

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// Report is what a run did: per device and in total. It is the job's JSON
// report (--report, --json).
type Report struct {
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	Seconds  float64   `json:"seconds"`
	// WindowsPerSecond is Checked / Seconds.
	WindowsPerSecond float64 `json:"windows_per_second"`
	DryRun           bool    `json:"dry_run,omitempty"`
	Full             bool    `json:"full,omitempty"`
	// Complete is false when the run stopped early (signal, timeout) or a
	// device failed: what it wrote stands, the next run continues.
	Complete bool            `json:"complete"`
	Devices  []*DeviceReport `json:"devices"`
	Total    Tally           `json:"total"`
	// Drift lists every window found in drift, with its explanation.
	Drift []Result `json:"drift"`
	// Errors are per-device failures and the reason a run stopped early.
	Errors []string `json:"errors,omitempty"`
}

// Tally counts windows by outcome and their causes.
type Tally struct {
	// Candidates are the windows the run looked at: their edge row
	// changed since the previous run (all windows with Full).
	Candidates int `json:"candidates"`
	// Checked windows were recomputed and compared: Exact + Explained +
	// Drift.
	Checked   int `json:"checked"`
	Exact     int `json:"exact"`
	Explained int `json:"explained"`
	Drift     int `json:"drift"`
	// Pending windows are not complete centrally yet (the shipper has not
	// passed their latest edge event, or raw readings newer than it are
	// waiting for their amendment); a later run takes them.
	Pending int `json:"pending"`
	// Unchanged windows had a reconciliation record saying the same.
	Unchanged int `json:"unchanged"`
	// Written counts the points written: a batch row and a
	// reconciliation record per changed window, plus progress markers.
	Written int `json:"written"`
	// Causes sums the causes over the checked windows.
	Causes Causes `json:"causes"`
}

func (t *Tally) add(o Tally) {
	t.Candidates += o.Candidates
	t.Checked += o.Checked
	t.Exact += o.Exact
	t.Explained += o.Explained
	t.Drift += o.Drift
	t.Pending += o.Pending
	t.Unchanged += o.Unchanged
	t.Written += o.Written
	t.Causes.add(o.Causes)
}

func (t *Tally) count(r *Result) {
	t.Checked++
	switch r.Status {
	case StatusExact:
		t.Exact++
	case StatusExplained:
		t.Explained++
	case StatusDrift:
		t.Drift++
	}
	t.Causes.add(r.Causes)
}

// DeviceReport is one device's part of a run.
type DeviceReport struct {
	Device string `json:"device"`
	// ThroughLSN is the device's shipped-through LSN the run used;
	// PreviousLSN the marker of the previous runs (where this one took
	// up); MarkerLSN the marker it left (held below pending windows).
	ThroughLSN  uint64 `json:"through_lsn"`
	PreviousLSN uint64 `json:"previous_lsn"`
	MarkerLSN   uint64 `json:"marker_lsn"`
	Tally
	Seconds float64 `json:"seconds"`
	Error   string  `json:"error,omitempty"`
}

// WriteSummary writes the human-readable summary: a table per device and
// the drifted windows.
func (r *Report) WriteSummary(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "DEVICE\tTHROUGH\tCHECKED\tEXACT\tEXPLAINED\tDRIFT\tPENDING\tWRITTEN\tLATE\tDUPL\tCONFL\tUNTRUST\tDROPPED\t")
	row := func(name string, through string, t *Tally) {
		c := t.Causes
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t\n", name, through, t.Checked, t.Exact,
			t.Explained, t.Drift, t.Pending, t.Written, c.Late, c.Duplicates, c.Conflicts, c.Untrusted, c.Dropped)
	}
	devs := append([]*DeviceReport(nil), r.Devices...)
	sort.Slice(devs, func(i, j int) bool { return devs[i].Device < devs[j].Device })
	for _, d := range devs {
		row(d.Device, fmt.Sprint(d.ThroughLSN), &d.Tally)
	}
	row("total", "", &r.Total)
	if err := tw.Flush(); err != nil {
		return err
	}
	state := "complete"
	if !r.Complete {
		state = "INCOMPLETE"
	}
	fmt.Fprintf(w, "\n%d windows checked in %.1fs (%.0f windows/s), %s", r.Total.Checked, r.Seconds, r.WindowsPerSecond, state)
	if r.DryRun {
		fmt.Fprint(w, ", dry run: nothing written")
	}
	fmt.Fprintln(w)
	for _, e := range r.Errors {
		fmt.Fprintf(w, "error: %s\n", e)
	}
	if len(r.Drift) > 0 {
		fmt.Fprintf(w, "\nDRIFT (%d windows):\n", len(r.Drift))
		for _, d := range r.Drift {
			fmt.Fprintf(w, "  %s %s %s %s %s: %s\n", d.Device, d.Series, d.Window, d.View,
				time.Unix(0, d.Start).UTC().Format(time.RFC3339Nano), d.Explanation)
		}
	}
	return nil
}

// progress formats the progress line.
func progressLine(done, total, devicesDone, devices int, elapsed time.Duration) string {
	rate := float64(done) / max(elapsed.Seconds(), 1e-9)
	var b strings.Builder
	fmt.Fprintf(&b, "edged-reconcile: %d/%d windows", done, total)
	if total > 0 {
		fmt.Fprintf(&b, " (%.1f%%)", 100*float64(done)/float64(total))
	}
	fmt.Fprintf(&b, ", %.0f windows/s, devices %d/%d", rate, devicesDone, devices)
	if rate > 0 && total > done {
		eta := time.Duration(float64(total-done) / rate * float64(time.Second)).Round(time.Second)
		fmt.Fprintf(&b, ", ETA %v", eta)
		if devicesDone < devices {
			b.WriteString(" (more as devices are scanned)")
		}
	}
	return b.String()
}
