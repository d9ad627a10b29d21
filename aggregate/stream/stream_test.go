package stream

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edged-io/edged"
	"github.com/edged-io/edged/aggregate"
	"github.com/edged-io/edged/aggregate/view"
	"github.com/edged-io/edged/wal"
)

var sizes = []time.Duration{10 * time.Second, time.Minute}

// records is a deterministic ingest history: 4 series, a batch every
// 100 ms of event time, with out-of-order, late, duplicate and conflicting
// readings, and a tick every second.
func records() [][]byte {
	rng := rand.New(rand.NewPCG(5, 6))
	t0 := int64(1_700_000_000) * int64(time.Second)
	var out [][]byte
	var prev []edged.Reading
	for i := range 3000 {
		t := t0 + int64(i)*int64(100*time.Millisecond)
		var batch []edged.Reading
		for s := range 4 {
			rt := t
			switch rng.IntN(50) {
			case 0:
				rt -= int64(2 * time.Second) // out of order, within lateness
			case 1:
				rt -= int64(30 * time.Second) // late
			}
			batch = append(batch, edged.Reading{Device: "pi", Series: []string{"a", "b", "c", "d"}[s], Unit: "°C",
				Value: math.Round(rng.NormFloat64()*1000) / 100, Time: rt, Ingest: t})
		}
		if i > 0 && rng.IntN(40) == 0 {
			batch = append(batch, prev[0]) // exact duplicate
			c := prev[1]
			c.Value++
			batch = append(batch, c) // conflict
		}
		prev = batch
		rec, err := edged.AppendRecord(nil, batch)
		if err != nil {
			panic(err)
		}
		out = append(out, rec)
		if i%10 == 9 {
			out = append(out, edged.AppendTick(nil, t+int64(500*time.Millisecond)))
		}
	}
	return out
}

func openLog(t *testing.T, dir string) *wal.Log {
	t.Helper()
	l, err := wal.Open(wal.Options{Dir: dir, Sync: wal.SyncNever})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func appendAll(t *testing.T, dir string, recs [][]byte) {
	t.Helper()
	l := openLog(t, dir)
	for _, r := range recs {
		if _, err := l.Append(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
}

// runStream opens log, estimates log, views and stream in dataDir,
// processes the whole log and stops (with its final checkpoint). obs, if
// not nil, is the stream's observer.
func runStream(t *testing.T, dataDir string, obs ...Observer) Stats {
	t.Helper()
	l := openLog(t, filepath.Join(dataDir, "wal"))
	est := openLog(t, filepath.Join(dataDir, "estimates"))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 2)
	go func() { done <- l.Run(ctx) }()
	go func() { done <- est.Run(ctx) }()
	views, err := view.Open(filepath.Join(dataDir, "views"), sizes, 0)
	if err != nil {
		t.Fatal(err)
	}
	o := Options{Log: l, Estimates: est, Dir: filepath.Join(dataDir, "aggregate"), Views: views, CheckpointEvery: time.Millisecond,
		Aggregate: aggregate.Options{Windows: sizes, Lateness: 5 * time.Second, IdleAfter: 30 * time.Second}}
	if len(obs) > 0 {
		o.Observer = obs[0]
	}
	st, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	sctx, stop := context.WithCancel(context.Background())
	sdone := make(chan error, 1)
	go func() { sdone <- st.Run(sctx) }()
	target := l.DurableLSN()
	for st.Stats().CheckpointLSN < target {
		time.Sleep(time.Millisecond)
	}
	stop()
	if err := <-sdone; err != nil {
		t.Fatal(err)
	}
	if err := views.Close(); err != nil {
		t.Fatal(err)
	}
	cancel()
	<-done
	<-done
	l.Close()
	est.Close()
	if c, _ := l.Cursor("aggregator"); c != target {
		t.Fatalf("cursor %d, want %d", c, target)
	}
	return st.Stats()
}

func snapshot(t *testing.T, dataDir string) map[string][]view.Row {
	t.Helper()
	views, err := view.Open(filepath.Join(dataDir, "views"), sizes, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer views.Close()
	out := map[string][]view.Row{}
	for _, s := range []string{"a", "b", "c", "d"} {
		for _, size := range sizes {
			rows, err := views.Query("pi", s, size, 0, math.MaxInt64)
			if err != nil {
				t.Fatal(err)
			}
			out[s+"/"+size.String()] = rows
		}
	}
	return out
}

// TestCrashAndReplayGiveTheViewsOfARunWithoutCrash: a crash leaves the
// views ahead of the last checkpoint; restarting from the checkpoint and
// replaying gives exactly the views of an uninterrupted run.
func TestCrashAndReplayGiveTheViewsOfARunWithoutCrash(t *testing.T) {
	recs := records()
	clean := t.TempDir()
	appendAll(t, filepath.Join(clean, "wal"), recs)
	stats := runStream(t, clean)
	want := snapshot(t, clean)
	var windows, withLate int
	for _, rows := range want {
		windows += len(rows)
		for _, r := range rows {
			if r.Values[view.FieldIndex("late")] > 0 {
				withLate++
			}
		}
	}
	if windows < 100 || withLate == 0 || stats.Amendments == 0 {
		t.Fatalf("the workload proves little: %d windows, %d with late readings, %d amendments", windows, withLate, stats.Amendments)
	}

	for trial, cut := range []int{len(recs) / 5, len(recs) / 2, 3 * len(recs) / 4} {
		dir := t.TempDir()
		crashAt := cut + 50 + trial*100
		appendAll(t, filepath.Join(dir, "wal"), recs[:cut])
		runStream(t, dir) // checkpoint at cut
		ckp := filepath.Join(dir, "aggregate", checkpointName)
		old, err := os.ReadFile(ckp)
		if err != nil {
			t.Fatal(err)
		}
		appendAll(t, filepath.Join(dir, "wal"), recs[cut:crashAt])
		runStream(t, dir) // views now hold windows through crashAt
		// The crash: the checkpoint written at crashAt never made it.
		if err := os.WriteFile(ckp, old, 0o640); err != nil {
			t.Fatal(err)
		}
		appendAll(t, filepath.Join(dir, "wal"), recs[crashAt:])
		runStream(t, dir)
		got := snapshot(t, dir)
		for key, rows := range want {
			if !equalRows(got[key], rows) {
				for i := range min(len(got[key]), len(rows)) {
					if !equalRows(got[key][i:i+1], rows[i:i+1]) {
						t.Logf("window %d: got %v\nwant %v", i, got[key][i].Values, rows[i].Values)
					}
				}
				t.Fatalf("trial %d: %s differs after crash and replay: %d windows vs %d", trial, key, len(got[key]), len(rows))
			}
		}
	}
}

func equalRows(a, b []view.Row) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Start != b[i].Start || a[i].End != b[i].End || len(a[i].Values) != len(b[i].Values) {
			return false
		}
		for j := range a[i].Values {
			x, y := a[i].Values[j], b[i].Values[j]
			if x != y && !(math.IsNaN(x) && math.IsNaN(y)) {
				return false
			}
		}
	}
	return true
}

func TestDamagedCheckpointRecomputesFromTheStart(t *testing.T) {
	recs := records()[:500]
	dir := t.TempDir()
	appendAll(t, filepath.Join(dir, "wal"), recs)
	runStream(t, dir)
	want := snapshot(t, dir)
	ckp := filepath.Join(dir, "aggregate", checkpointName)
	b, _ := os.ReadFile(ckp)
	b[len(b)/2] ^= 0xff
	os.WriteFile(ckp, b, 0o640)
	if _, _, _, err := readCheckpoint(ckp); err == nil {
		t.Fatal("a damaged checkpoint passed its checksum")
	}
	runStream(t, dir)
	if got := snapshot(t, dir); !reflect.DeepEqual(keys(got), keys(want)) {
		t.Fatal("views differ after recomputing")
	} else {
		for k := range want {
			if !equalRows(got[k], want[k]) {
				t.Fatalf("%s differs after recomputing from the start", k)
			}
		}
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "aggregate", "checkpoint.damaged.*")); len(m) != 1 {
		t.Fatalf("the damaged checkpoint was not kept aside: %v", m)
	}
}

func keys(m map[string][]view.Row) []string {
	var k []string
	for key := range m {
		k = append(k, key)
	}
	slices.Sort(k)
	return k
}

// TestDamagedViewsRecomputed: a view partition that no longer opens is
// set aside by the view store, and the stream recomputes what it held from
// the log: the views equal those of an undamaged run.
func TestDamagedViewsRecomputed(t *testing.T) {
	recs := records()[:800]
	dir := t.TempDir()
	appendAll(t, filepath.Join(dir, "wal"), recs)
	runStream(t, dir)
	want := snapshot(t, dir)
	metas, _ := filepath.Glob(filepath.Join(dir, "views", "10s", "g*", "p-*", "meta.json"))
	if len(metas) == 0 {
		t.Fatal("no partition to damage")
	}
	for _, m := range metas {
		os.WriteFile(m, []byte("{torn"), 0o640)
	}
	runStream(t, dir)
	got := snapshot(t, dir)
	if !reflect.DeepEqual(keys(got), keys(want)) {
		t.Fatalf("series differ after recomputing: %v, want %v", keys(got), keys(want))
	}
	for k := range want {
		if !equalRows(got[k], want[k]) {
			t.Fatalf("%s differs after recomputing the damaged views", k)
		}
	}
	if q, _ := os.ReadDir(filepath.Join(dir, "views", "quarantine")); len(q) != 1 {
		t.Fatalf("quarantine holds %d entries, want the damaged lane", len(q))
	}
}

// failingViews refuses writes while fail is set.
type failingViews struct {
	*view.Store
	fail atomic.Bool
}

func (f *failingViews) Put(rows []view.Row) error {
	if f.fail.Load() {
		return errors.New("injected: no space left on device")
	}
	return f.Store.Put(rows)
}

// TestViewWriteFailureIsNotFatal: while the views refuse writes the stream
// keeps running, holds checkpoints back and keeps the rows; once they
// accept writes again every window is there, as in a run without failure.
func TestViewWriteFailureIsNotFatal(t *testing.T) {
	recs := records()[:1200]
	ref := t.TempDir()
	appendAll(t, filepath.Join(ref, "wal"), recs)
	runStream(t, ref)
	want := snapshot(t, ref)

	dir := t.TempDir()
	appendAll(t, filepath.Join(dir, "wal"), recs[:400])
	l := openLog(t, filepath.Join(dir, "wal"))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go l.Run(ctx)
	store, err := view.Open(filepath.Join(dir, "views"), sizes, 0)
	if err != nil {
		t.Fatal(err)
	}
	views := &failingViews{Store: store}
	st, err := New(Options{Log: l, Dir: filepath.Join(dir, "aggregate"), Views: views, CheckpointEvery: time.Millisecond,
		Aggregate: aggregate.Options{Windows: sizes, Lateness: 5 * time.Second, IdleAfter: 30 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	sctx, stop := context.WithCancel(context.Background())
	sdone := make(chan error, 1)
	go func() { sdone <- st.Run(sctx) }()
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !ok(); time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s; stats %+v", what, st.Stats())
			}
		}
	}
	waitFor("the first checkpoint", func() bool { return st.Stats().CheckpointLSN == l.DurableLSN() })
	views.fail.Store(true)
	held := st.Stats().CheckpointLSN
	for _, r := range recs[400:] {
		if _, err := l.Append(r); err != nil {
			t.Fatal(err)
		}
	}
	waitFor("a failed view write", func() bool { return st.Stats().ViewErrors > 0 && st.Stats().Applied >= uint64(len(recs)) })
	time.Sleep(50 * time.Millisecond)
	select {
	case err := <-sdone:
		t.Fatalf("the stream stopped on a view write failure: %v", err)
	default:
	}
	if c := st.Stats().CheckpointLSN; c != held {
		t.Fatalf("checkpoint moved from %d to %d past rows the views did not store", held, c)
	}
	views.fail.Store(false)
	waitFor("the checkpoint to catch up", func() bool { return st.Stats().CheckpointLSN == l.DurableLSN() })
	stop()
	if err := <-sdone; err != nil {
		t.Fatal(err)
	}
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}
	got := snapshot(t, dir)
	for k := range want {
		if !equalRows(got[k], want[k]) {
			t.Fatalf("%s differs after the views failed for a while", k)
		}
	}
	if st.Stats().ViewDropped != 0 {
		t.Fatalf("%d windows dropped", st.Stats().ViewDropped)
	}
}
