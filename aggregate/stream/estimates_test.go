package stream

import (
	"cmp"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/edged-io/edged"
	"github.com/edged-io/edged/aggregate"
	"github.com/edged-io/edged/aggregate/view"
	"github.com/edged-io/edged/wal"
)

// estimates reads the estimates log: the latest row of every window, in
// the snapshot's keying, and the through marks in log order.
func estimates(t *testing.T, dataDir string) (map[string][]view.Row, []uint64) {
	t.Helper()
	l, err := wal.OpenReadOnly(wal.Options{Dir: filepath.Join(dataDir, "estimates")})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	r := l.NewReader(1)
	defer r.Close()
	latest := map[string]map[int64]view.Row{}
	var marks []uint64
	for {
		rec, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		kind, row, through, err := view.DecodeRecord(rec.Data)
		if err != nil {
			t.Fatal(err)
		}
		if kind == view.RecordThrough {
			marks = append(marks, through)
			continue
		}
		key := row.Series + "/" + row.Size.String()
		if latest[key] == nil {
			latest[key] = map[int64]view.Row{}
		}
		prev, ok := latest[key][row.Start]
		applied := view.FieldIndex("applied_lsn")
		if ok && prev.Values[applied] > row.Values[applied] {
			continue // a replayed row older than one already logged
		}
		latest[key][row.Start] = row
	}
	out := map[string][]view.Row{}
	for key, m := range latest {
		rows := make([]view.Row, 0, len(m))
		for _, r := range m {
			rows = append(rows, r)
		}
		slices.SortFunc(rows, func(a, b view.Row) int { return cmp.Compare(a.Start, b.Start) })
		out[key] = rows
	}
	return out, marks
}

// TestEstimatesLogMatchesTheViews: the latest row of every window in the
// estimates log is the row the view store holds, through a crash that
// lost the checkpoint and the estimates' tail but not the views, and the
// last through mark is the end of the log.
func TestEstimatesLogMatchesTheViews(t *testing.T) {
	recs := records()
	dir := t.TempDir()
	cut, crashAt := len(recs)/3, len(recs)/2
	appendAll(t, filepath.Join(dir, "wal"), recs[:cut])
	runStream(t, dir)
	ckp := filepath.Join(dir, "aggregate", checkpointName)
	old, err := os.ReadFile(ckp)
	if err != nil {
		t.Fatal(err)
	}
	estDir := filepath.Join(dir, "estimates")
	oldEst := filepath.Join(t.TempDir(), "estimates")
	if err := os.CopyFS(oldEst, os.DirFS(estDir)); err != nil {
		t.Fatal(err)
	}
	appendAll(t, filepath.Join(dir, "wal"), recs[cut:crashAt])
	runStream(t, dir)
	// The crash: neither the checkpoint nor the estimates written since
	// the first run made it, but the views did.
	if err := os.WriteFile(ckp, old, 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(estDir); err != nil {
		t.Fatal(err)
	}
	if err := os.CopyFS(estDir, os.DirFS(oldEst)); err != nil {
		t.Fatal(err)
	}
	appendAll(t, filepath.Join(dir, "wal"), recs[crashAt:])
	runStream(t, dir)

	want := snapshot(t, dir)
	got, marks := estimates(t, dir)
	for key, rows := range want {
		if len(rows) == 0 {
			continue
		}
		if !equalRows(got[key], rows) {
			t.Fatalf("%s: estimates log has %d windows, views %d (or values differ)", key, len(got[key]), len(rows))
		}
	}
	if len(marks) == 0 || marks[len(marks)-1] != uint64(len(recs)) {
		t.Fatalf("through marks %v…: the last should be %d", marks[max(len(marks)-3, 0):], len(recs))
	}
}

// digestObserver folds everything it observes into a hash: its state is a
// pure function of the log, as an observer's must be.
type digestObserver struct {
	h                 uint64
	readings, windows int
	ticks             int
	refuseRestoreOnce bool
}

func (o *digestObserver) mix(s string) {
	f := fnv.New64a()
	fmt.Fprintf(f, "%d|%s", o.h, s)
	o.h = f.Sum64()
}

func (o *digestObserver) Reading(r *edged.Reading) {
	o.readings++
	o.mix(fmt.Sprintf("r %s %d %v %d", r.Series, r.Time, r.Value, r.LSN))
}

func (o *digestObserver) Window(w *aggregate.Window) {
	o.windows++
	o.mix(fmt.Sprintf("w %s %v %d %d %v", w.Series, w.Size, w.Start, w.Count, math.Float64bits(w.Sum)))
}

func (o *digestObserver) Tick(now int64, lsn uint64) {
	o.ticks++
	o.mix(fmt.Sprintf("t %d %d", now, lsn))
}

func (o *digestObserver) MarshalBinary() ([]byte, error) {
	return fmt.Appendf(nil, "%d %d %d %d", o.h, o.readings, o.windows, o.ticks), nil
}

func (o *digestObserver) UnmarshalBinary(b []byte) error {
	if o.refuseRestoreOnce {
		o.refuseRestoreOnce = false
		return errors.New("rules changed")
	}
	_, err := fmt.Sscanf(string(b), "%d %d %d %d", &o.h, &o.readings, &o.windows, &o.ticks)
	return err
}

// TestObserverStateSurvivesCrashAndRebuild: the observer's checkpointed
// state plus replay equals an uninterrupted run's; and when it refuses its
// checkpointed state, replaying the log rebuilds the same state.
func TestObserverStateSurvivesCrashAndRebuild(t *testing.T) {
	recs := records()
	clean := t.TempDir()
	appendAll(t, filepath.Join(clean, "wal"), recs)
	want := &digestObserver{}
	runStream(t, clean, want)
	if want.readings < 10000 || want.windows < 100 || want.ticks < 100 {
		t.Fatalf("the observer saw too little: %+v", want)
	}
	for _, rebuild := range []bool{false, true} {
		dir := t.TempDir()
		cut, crashAt := len(recs)/4, len(recs)/2
		appendAll(t, filepath.Join(dir, "wal"), recs[:cut])
		runStream(t, dir, &digestObserver{})
		ckp := filepath.Join(dir, "aggregate", checkpointName)
		old, err := os.ReadFile(ckp)
		if err != nil {
			t.Fatal(err)
		}
		appendAll(t, filepath.Join(dir, "wal"), recs[cut:crashAt])
		runStream(t, dir, &digestObserver{})
		if err := os.WriteFile(ckp, old, 0o640); err != nil {
			t.Fatal(err)
		}
		appendAll(t, filepath.Join(dir, "wal"), recs[crashAt:])
		got := &digestObserver{refuseRestoreOnce: rebuild}
		runStream(t, dir, got)
		if got.h != want.h || got.readings != want.readings || got.windows != want.windows || got.ticks != want.ticks {
			t.Fatalf("rebuild=%v: observer state %+v, want %+v", rebuild, got, want)
		}
	}
}
