package replay

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/big"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edged-io/edged"
	"github.com/edged-io/edged/aggregate"
	"github.com/edged-io/edged/aggregate/stream"
	"github.com/edged-io/edged/aggregate/view"
	"github.com/edged-io/edged/alerts"
	"github.com/edged-io/edged/wal"
)

func runReplay(t testing.TB, ctx context.Context, o Options) Summary {
	t.Helper()
	if o.CheckpointEvery == 0 {
		o.CheckpointEvery = 50 * time.Millisecond
	}
	r, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Run(ctx); err != nil {
		t.Fatal(err)
	}
	return r.Summary()
}

// TestReplayWithTheSameConfigReproducesTheLiveView: the live stream's
// view and a replay's, with the same configuration, are equal bit for
// bit, every field of every window of every series and size (CloseLSN
// and applied_lsn included), with one aggregator or several.
func TestReplayWithTheSameConfigReproducesTheLiveView(t *testing.T) {
	dir := t.TempDir()
	recs := history{series: 30, seconds: 600, seed: 3}.records()
	writeLog(t, Layout{dir}.WAL(), recs)
	runLive(t, dir, testOptions())
	live := rowsOf(t, dir, "v1")
	if n := countRows(live); n < 1000 {
		t.Fatalf("the live view has %d windows", n)
	}
	for _, workers := range []int{1, 2, 4} {
		v := fmt.Sprintf("same%d", workers)
		sum := runReplay(t, context.Background(), Options{DataDir: dir, Version: v, Aggregate: testOptions(), Workers: workers})
		if sum.ThroughLSN != uint64(len(recs)) || !sum.CaughtUp || sum.Excluded != 0 || sum.BadRecords != 3 {
			t.Fatalf("workers %d: %+v", workers, sum)
		}
		sameRows(t, rowsOf(t, dir, v), live)
		m, err := ReadManifest(Layout{dir}.Views(), v)
		if err != nil || m.Source != "replay" || m.ThroughLSN != uint64(len(recs)) || !m.CaughtUp {
			t.Fatalf("manifest %+v, %v", m, err)
		}
		lm, _ := ReadManifest(Layout{dir}.Views(), "v1")
		if lm.Fingerprint != m.Fingerprint {
			t.Fatal("same configuration, different fingerprints")
		}
	}
	// The daemon, switched to a replayed version, continues from the
	// replay's checkpoint: the stream loads it without recomputing.
	st, err := stream.New(stream.Options{Log: mustOpenRO(t, dir), Aggregate: testOptions(), Dir: Layout{dir}.Checkpoints("same2"),
		Views: mustOpenView(t, dir, "same2")})
	if err != nil {
		t.Fatal(err)
	}
	if st.Stats().CheckpointLSN != uint64(len(recs)) {
		t.Fatalf("the live stream would restart at %d, not after %d", st.Stats().CheckpointLSN, len(recs))
	}
}

func mustOpenRO(t testing.TB, dir string) *wal.Log {
	l, err := wal.OpenReadOnly(wal.Options{Dir: Layout{dir}.WAL()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func mustOpenView(t testing.TB, dir, v string) *view.Store {
	s, err := view.Open(view.VersionDir(Layout{dir}.Views(), v), testSizes, view.DefaultKeep)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// naive is an independent, obviously correct aggregation: per series, in
// log order, a reading is late if its event time is before the highest
// accepted one minus the lateness, a duplicate if its time was accepted;
// windows are plain groups of accepted readings.
type naiveWindow struct {
	values      []float64
	first, last aggregate.Point
	late        uint64
}

func naive(recs [][]byte, sizes []time.Duration, lateness time.Duration) map[string]*naiveWindow {
	type state struct {
		hasWM    bool
		wm, fr   int64
		accepted map[int64]bool
	}
	states := map[string]*state{}
	out := map[string]*naiveWindow{}
	win := func(r *edged.Reading, size time.Duration) *naiveWindow {
		start := r.Time - ((r.Time%int64(size))+int64(size))%int64(size)
		k := fmt.Sprintf("%s/%s/%s/%d", r.Device, r.Series, size, start)
		w := out[k]
		if w == nil {
			w = &naiveWindow{first: aggregate.Point{Time: math.MaxInt64}, last: aggregate.Point{Time: math.MinInt64}}
			out[k] = w
		}
		return w
	}
	for i, rec := range recs {
		rs, err := edged.DecodeRecord(nil, rec, uint64(i+1))
		if err != nil {
			continue
		}
		for _, r := range rs {
			s := states[r.Device+"/"+r.Series]
			if s == nil {
				s = &state{fr: math.MinInt64, accepted: map[int64]bool{}}
				states[r.Device+"/"+r.Series] = s
			}
			switch {
			case s.hasWM && r.Time < s.fr:
				for _, size := range sizes {
					win(&r, size).late++
				}
				continue
			case s.accepted[r.Time]:
				continue
			}
			s.accepted[r.Time] = true
			if !s.hasWM || r.Time > s.wm {
				s.hasWM, s.wm = true, r.Time
				s.fr = max(s.fr, r.Time-int64(lateness))
			}
			for _, size := range sizes {
				w := win(&r, size)
				w.values = append(w.values, r.Value)
				if r.Time < w.first.Time {
					w.first = aggregate.Point{Time: r.Time, Value: r.Value}
				}
				if r.Time > w.last.Time {
					w.last = aggregate.Point{Time: r.Time, Value: r.Value}
				}
			}
		}
	}
	return out
}

// jittery is a simple history: 6 series reading every 250 ms, event
// times jittered up to 3 s back (so the lateness decides what is late),
// a tick every second, and a last tick that closes everything.
func jittery(seed uint64) [][]byte {
	rng := rand.New(rand.NewPCG(seed, 7))
	t0 := time.Now().Add(-3 * time.Hour).Truncate(time.Hour).UnixNano()
	var out [][]byte
	step := int64(250 * time.Millisecond)
	for k := range 4 * 900 {
		now := t0 + int64(k)*step
		var rs []edged.Reading
		for s := range 6 {
			t := now - int64(rng.IntN(3000))*int64(time.Millisecond)
			rs = append(rs, edged.Reading{Device: "pi", Series: fmt.Sprintf("s%d", s), Unit: "hPa", Time: t, Ingest: now,
				Value: math.Round((1000+10*rng.NormFloat64())*1000) / 1000})
		}
		out = append(out, mustRecord(rs))
		if k%4 == 3 {
			out = append(out, edged.AppendTick(nil, now))
		}
	}
	return append(out, edged.AppendTick(nil, t0+int64(10*time.Hour)))
}

// TestReplayWithAnotherConfigMatchesANaiveAggregation: other window
// sizes, quantiles and lateness; every window of the replayed view equals
// an independent computation (count, sum, min, max, mean, first, last and
// late exactly; quantiles within the sketch's 1 % of the exact
// nearest-rank quantile).
func TestReplayWithAnotherConfigMatchesANaiveAggregation(t *testing.T) {
	dir := t.TempDir()
	recs := jittery(4)
	writeLog(t, Layout{dir}.WAL(), recs)
	lates := map[time.Duration]uint64{}
	for _, late := range []time.Duration{500 * time.Millisecond, 2 * time.Second} {
		sizes := []time.Duration{15 * time.Second, 45 * time.Second, 90 * time.Second}
		o := aggregate.Options{Windows: sizes, Lateness: late, IdleAfter: time.Hour, Quantiles: []float64{0.5, 0.99}}
		v := fmt.Sprintf("late%d", late.Milliseconds())
		runReplay(t, context.Background(), Options{DataDir: dir, Version: v, Aggregate: o, Workers: 2})
		got := rowsOf(t, dir, v)
		want := naive(recs, sizes, late)
		checked := 0
		for key, rows := range got {
			for _, row := range rows {
				k := fmt.Sprintf("%s/%s/%s/%d", row.Device, row.Series, row.Size, row.Start)
				w := want[k]
				if w == nil {
					t.Fatalf("%s: a window the naive aggregation does not have", k)
				}
				delete(want, k)
				f := func(name string) float64 { return row.Values[view.FieldIndex(name)] }
				n := float64(len(w.values))
				sum := exactSum(w.values)
				sorted := slices.Sorted(slices.Values(w.values))
				if f("count") != n || f("sum") != sum || f("min") != sorted[0] || f("max") != sorted[len(sorted)-1] ||
					f("mean") != sum/n || f("first") != w.first.Value || f("last") != w.last.Value || f("late") != float64(w.late) {
					t.Fatalf("%s: %v\nwant count %v sum %v min %v max %v first %v last %v late %d", key, row.Values, n, sum,
						sorted[0], sorted[len(sorted)-1], w.first.Value, w.last.Value, w.late)
				}
				for _, q := range []float64{0.5, 0.99} {
					x := aggregate.ExactQuantile(sorted, q)
					if got := f(fmt.Sprintf("p%g", q*100)); math.Abs(got-x) > 0.01*math.Abs(x) {
						t.Fatalf("%s: p%g = %v, exact %v", key, q*100, got, x)
					}
				}
				if !math.IsNaN(f("p95")) {
					t.Fatalf("%s: p95 stored though not configured", key)
				}
				lates[late] += w.late
				checked++
			}
		}
		for k, w := range want {
			if len(w.values) > 0 {
				t.Fatalf("%s: missing from the view (%d readings)", k, len(w.values))
			}
		}
		if checked < 300 {
			t.Fatalf("only %d windows checked", checked)
		}
	}
	if lates[500*time.Millisecond] <= lates[2*time.Second] || lates[2*time.Second] == 0 {
		t.Fatalf("late readings by lateness: %v: the history does not exercise the lateness", lates)
	}
}

func exactSum(vs []float64) float64 {
	s := new(big.Float).SetPrec(2048)
	for _, v := range vs {
		s.Add(s, new(big.Float).SetPrec(2048).SetFloat64(v))
	}
	f, _ := s.Float64()
	return f
}

// TestAnInterruptedReplayResumesToTheSameView: a replay stopped at
// several points (bounded by --to, cancelled), and resumed, with various
// numbers of workers, ends with the view of an uninterrupted one.
func TestAnInterruptedReplayResumesToTheSameView(t *testing.T) {
	dir := t.TempDir()
	recs := history{series: 30, seconds: 900, seed: 5}.records()
	writeLog(t, Layout{dir}.WAL(), recs)
	runReplay(t, context.Background(), Options{DataDir: dir, Version: "whole", Aggregate: testOptions(), Workers: 1})
	want := rowsOf(t, dir, "whole")
	n := uint64(len(recs))

	// Bounded by --to, then resumed.
	for i, to := range []uint64{n / 7, n / 3, n / 3, 2 * n / 3} {
		sum := runReplay(t, context.Background(), Options{DataDir: dir, Version: "parts", Aggregate: testOptions(),
			Workers: 1 + i%3, To: Bound{LSN: to}})
		if sum.ThroughLSN != to {
			t.Fatalf("--to %d: checkpoint at %d", to, sum.ThroughLSN)
		}
	}
	// Cancelled mid-way, at whatever point the replay reached.
	ctx, cancel := context.WithCancel(context.Background())
	sum := runReplay(t, ctx, Options{DataDir: dir, Version: "parts", Aggregate: testOptions(), Workers: 2,
		ProgressEvery: time.Millisecond, Progress: func(p Progress) {
			if p.Records > 100 {
				cancel()
			}
		}})
	cancel()
	if !sum.Resumed || !sum.Interrupted || sum.ThroughLSN >= n || sum.ThroughLSN <= 2*n/3 {
		t.Fatalf("cancelled run: %+v", sum)
	}
	sum = runReplay(t, context.Background(), Options{DataDir: dir, Version: "parts", Aggregate: testOptions()})
	if sum.ThroughLSN != n {
		t.Fatalf("resumed replay ends at %d, want %d", sum.ThroughLSN, n)
	}
	sameRows(t, rowsOf(t, dir, "parts"), want)
	a, _ := os.ReadFile(filepath.Join(Layout{dir}.Checkpoints("whole"), "checkpoint"))
	b, _ := os.ReadFile(filepath.Join(Layout{dir}.Checkpoints("parts"), "checkpoint"))
	if len(a) == 0 || string(a) != string(b) {
		t.Fatal("final checkpoints differ")
	}
}

// TestReplayBesideARunningDaemon: a process-like writer appends to the log
// through its own *wal.Log (small segments, so that it rotates), with the
// live stream consuming it, while a replay follows the same log opened
// read-only. The live view is what it is without the replay, the replay
// catches up and its view equals a replay of the finished log, and the
// replay left no trace in the log (no cursor).
func TestReplayBesideARunningDaemon(t *testing.T) {
	recs := history{series: 20, seconds: 600, seed: 6}.records()
	o := testOptions()
	dir := t.TempDir()
	lay := Layout{dir}
	l, err := wal.Open(wal.Options{Dir: lay.WAL(), Sync: wal.SyncInterval, SegmentSize: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	walCtx, stopWAL := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { l.Run(walCtx) })
	views, err := view.Open(view.VersionDir(lay.Views(), "v1"), testSizes, view.DefaultKeep)
	if err != nil {
		t.Fatal(err)
	}
	live, err := stream.New(stream.Options{Log: l, Aggregate: o, Dir: lay.Checkpoints("v1"), Views: views, CheckpointEvery: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	liveCtx, stopLive := context.WithCancel(context.Background())
	liveErr := make(chan error, 1)
	go func() { liveErr <- live.Run(liveCtx) }()

	// The first third is there before the replay starts.
	third := len(recs) / 3
	for _, r := range recs[:third] {
		if _, err := l.Append(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.WaitDurable(context.Background(), uint64(third)); err != nil {
		t.Fatal(err)
	}
	var pos atomic.Uint64
	rctx, stopReplay := context.WithCancel(context.Background())
	var sum Summary
	replayErr := make(chan error, 1)
	go func() {
		r, err := New(Options{DataDir: dir, Version: "v2", Aggregate: o, Follow: true, Poll: 10 * time.Millisecond, Workers: 2,
			CheckpointEvery: 30 * time.Millisecond, ProgressEvery: 5 * time.Millisecond, Progress: func(p Progress) { pos.Store(p.Position) }})
		if err == nil {
			err = r.Run(rctx)
		}
		sum = r.Summary()
		replayErr <- err
	}()
	for i, r := range recs[third:] {
		if _, err := l.Append(r); err != nil {
			t.Fatal(err)
		}
		if i%40 == 0 {
			time.Sleep(time.Millisecond)
		}
	}
	last := uint64(len(recs))
	if err := l.WaitDurable(context.Background(), last); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for pos.Load() < last {
		if time.Now().After(deadline) {
			t.Fatalf("the replay did not catch up: at %d of %d", pos.Load(), last)
		}
		time.Sleep(5 * time.Millisecond)
	}
	stopReplay()
	if err := <-replayErr; err != nil {
		t.Fatal(err)
	}
	if sum.ThroughLSN != last || !sum.CaughtUp {
		t.Fatalf("replay summary %+v", sum)
	}
	for live.Stats().Applied < last {
		time.Sleep(time.Millisecond)
	}
	stopLive()
	if err := <-liveErr; err != nil {
		t.Fatal(err)
	}
	views.Close()
	if c := l.Cursors(); len(c) != 1 || c["aggregator"] != last {
		t.Fatalf("cursors %v: the replay must leave none", c)
	}
	stopWAL()
	wg.Wait()
	l.Close()
	if segs, _ := filepath.Glob(filepath.Join(lay.WAL(), "*.wal")); len(segs) < 3 {
		t.Fatalf("only %d segments: the replay never followed a rotation", len(segs))
	}

	clean := t.TempDir()
	writeLog(t, Layout{clean}.WAL(), recs)
	runLive(t, clean, o)
	want := rowsOf(t, clean, "v1")
	sameRows(t, rowsOf(t, dir, "v1"), want) // the live view is unaffected
	sameRows(t, rowsOf(t, dir, "v2"), want) // and the replay caught up with it
}

// TestBoundedReplays: --from (LSN or time) drops the windows its start
// edge makes partial and keeps the rest equal to a full replay's; --to
// stops at the bound.
func TestBoundedReplays(t *testing.T) {
	dir := t.TempDir()
	recs := history{series: 10, seconds: 900, seed: 8}.records()
	writeLog(t, Layout{dir}.WAL(), recs)
	runReplay(t, context.Background(), Options{DataDir: dir, Version: "full", Aggregate: testOptions()})
	full := rowsOf(t, dir, "full")
	root := Layout{dir}.Views()
	t0 := history{}.t0OrDefault()

	from := uint64(len(recs) / 3)
	wantT0, _ := ingestTime(recs[from-1])
	sum := runReplay(t, context.Background(), Options{DataDir: dir, Version: "fromlsn", Aggregate: testOptions(), From: Bound{LSN: from}})
	if sum.StartLSN != from || sum.Excluded == 0 || sum.ExcludeBefore != wantT0 {
		t.Fatalf("--from %d: %+v (first ingest time %d)", from, sum, wantT0)
	}
	checkEdge(t, rowsOf(t, dir, "fromlsn"), full, wantT0)

	at := time.Unix(0, t0+int64(400*time.Second))
	sum = runReplay(t, context.Background(), Options{DataDir: dir, Version: "fromtime", Aggregate: testOptions(), From: Bound{Time: at}})
	if sum.ExcludeBefore != at.UnixNano() || sum.Excluded == 0 {
		t.Fatalf("--from %s: %+v", at, sum)
	}
	checkEdge(t, rowsOf(t, dir, "fromtime"), full, at.UnixNano())
	if m, _ := ReadManifest(root, "fromtime"); m.ExcludeBefore != at.UnixNano() {
		t.Fatalf("manifest %+v", m)
	}
	// Resuming with another --from is refused.
	r, _ := New(Options{DataDir: dir, Version: "fromtime", Aggregate: testOptions(), From: Bound{LSN: 5}})
	if err := r.Run(context.Background()); !errors.Is(err, ErrBoundsChanged) {
		t.Fatalf("resumed with another --from: %v", err)
	}

	until := time.Unix(0, t0+int64(300*time.Second))
	sum = runReplay(t, context.Background(), Options{DataDir: dir, Version: "totime", Aggregate: testOptions(), To: Bound{Time: until}})
	for _, rows := range rowsOf(t, dir, "totime") {
		for _, row := range rows {
			if lsn := uint64(row.Values[view.FieldIndex("applied_lsn")]); lsn > sum.ThroughLSN {
				t.Fatalf("a window applied at %d, after the bound's %d", lsn, sum.ThroughLSN)
			}
		}
	}
	if it, _ := ingestTime(recs[sum.ThroughLSN]); it < until.UnixNano() {
		t.Fatalf("--to %s stopped at LSN %d, before the first record ingested after it", until, sum.ThroughLSN)
	}
	if it, ok := ingestTime(recs[sum.ThroughLSN-1]); ok && it >= until.UnixNano() {
		t.Fatalf("--to %s replayed LSN %d, ingested at %d", until, sum.ThroughLSN, it)
	}
}

// checkEdge: a replay from a bound holds no window starting before t0,
// and its windows starting a minute after it (past every delay a reading
// has in the history) equal the full replay's.
func checkEdge(t *testing.T, got, full map[string][]view.Row, t0 int64) {
	t.Helper()
	compared := 0
	for key, rows := range got {
		byStart := map[int64]view.Row{}
		for _, r := range full[key] {
			byStart[r.Start] = r
		}
		for _, r := range rows {
			if r.Start < t0 {
				t.Fatalf("%s: window at %d kept, before the edge %d", key, r.Start, t0)
			}
			if r.Start < t0+int64(time.Minute) {
				continue
			}
			w, ok := byStart[r.Start]
			if !ok {
				t.Fatalf("%s: window at %d not in the full replay", key, r.Start)
			}
			for _, f := range []string{"count", "sum", "min", "max", "first", "last", "p50", "p99"} {
				i := view.FieldIndex(f)
				if math.Float64bits(r.Values[i]) != math.Float64bits(w.Values[i]) {
					t.Fatalf("%s at %d: %s = %v, full replay %v", key, r.Start, f, r.Values[i], w.Values[i])
				}
			}
			compared++
		}
	}
	if compared == 0 {
		t.Fatal("nothing compared")
	}
}

func TestReplayRefusesWhatItMustNotTouch(t *testing.T) {
	dir := t.TempDir()
	writeLog(t, Layout{dir}.WAL(), history{series: 3, seconds: 60, seed: 9}.records())
	root := Layout{dir}.Views()
	runReplay(t, context.Background(), Options{DataDir: dir, Version: "v2", Aggregate: testOptions()})

	other := testOptions()
	other.Lateness = time.Second
	r, _ := New(Options{DataDir: dir, Version: "v2", Aggregate: other})
	if err := r.Run(context.Background()); !errors.Is(err, ErrConfigChanged) {
		t.Fatalf("another config into v2: %v", err)
	}
	lock, err := view.LockVersion(root, "v3", "edged run")
	if err != nil {
		t.Fatal(err)
	}
	r, _ = New(Options{DataDir: dir, Version: "v3", Aggregate: testOptions()})
	if err := r.Run(context.Background()); !errors.Is(err, view.ErrLocked) {
		t.Fatalf("into a locked version: %v", err)
	}
	lock.Unlock()
	if err := os.MkdirAll(filepath.Join(root, "old", "10s"), 0o750); err != nil {
		t.Fatal(err)
	}
	r, _ = New(Options{DataDir: dir, Version: "old", Aggregate: testOptions()})
	if err := r.Run(context.Background()); err == nil {
		t.Fatal("replayed into a version without manifest")
	}
	for _, bad := range []string{"", "2x", "ACTIVE", "checkpoint", "a/b"} {
		if _, err := New(Options{DataDir: dir, Version: bad}); err == nil {
			t.Errorf("version %q accepted", bad)
		}
	}
}

// TestActivateWhenCaughtUp: --activate switches the active view once the
// replay has reached the end.
func TestActivateWhenCaughtUp(t *testing.T) {
	dir := t.TempDir()
	writeLog(t, Layout{dir}.WAL(), history{series: 3, seconds: 60, seed: 10}.records())
	for _, follow := range []bool{false, true} {
		v := fmt.Sprintf("follow-%v", follow)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		sum := runReplay(t, ctx, Options{DataDir: dir, Version: v, Aggregate: testOptions(), Activate: true, Follow: follow, Poll: 5 * time.Millisecond})
		cancel()
		if !sum.Activated || sum.Interrupted {
			t.Fatalf("%+v", sum)
		}
		if a, _ := view.Active(Layout{dir}.Views()); a != v {
			t.Fatalf("active %q, want %q", a, v)
		}
	}
}

// TestAlertsReportResumes: the alert transitions of an interrupted and
// resumed replay are those of an uninterrupted one, line for line.
func TestAlertsReportResumes(t *testing.T) {
	dir := t.TempDir()
	recs := history{series: 12, seconds: 900, seed: 11}.records()
	writeLog(t, Layout{dir}.WAL(), recs)
	above, clear := 24.0, 23.0
	rules := []alerts.Rule{
		{Name: "hot", Series: "room/*/temp", Above: &above, ClearBelow: &clear, For: alerts.Duration(3 * time.Second)},
		{Name: "hot-mean", Series: "room/*/temp", Window: alerts.Duration(time.Minute), Aggregate: "mean", Above: &above},
		{Name: "silent", Series: "room/*/temp", Absent: alerts.Duration(20 * time.Second)},
	}
	report := func(version, path string, o Options) {
		eng, err := alerts.New(rules, alerts.Options{})
		if err != nil {
			t.Fatal(err)
		}
		through, _ := stream.CheckpointLSN(Layout{dir}.Checkpoints(version))
		rep, err := OpenAlertReport(path, eng, through)
		if err != nil {
			t.Fatal(err)
		}
		o.DataDir, o.Version, o.Aggregate, o.Observer = dir, version, testOptions(), rep
		runReplay(t, context.Background(), o)
		if err := rep.Close(); err != nil {
			t.Fatal(err)
		}
	}
	whole := filepath.Join(t.TempDir(), "whole.jsonl")
	report("a1", whole, Options{})
	parts := filepath.Join(t.TempDir(), "parts.jsonl")
	n := uint64(len(recs))
	for _, to := range []uint64{n / 5, n / 2} {
		report("a2", parts, Options{To: Bound{LSN: to}})
	}
	// A crash after the report got lines the checkpoint does not cover.
	f, _ := os.OpenFile(parts, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"rule":"hot","lsn":999999999,"seq":0}` + "\n" + `{"rule":"torn`)
	f.Close()
	report("a2", parts, Options{})
	a, _ := os.ReadFile(whole)
	b, _ := os.ReadFile(parts)
	if lines := len(splitLines(a)); lines < 10 {
		t.Fatalf("only %d transitions: the rules prove little", lines)
	}
	if string(a) != string(b) {
		t.Fatalf("reports differ: %d vs %d lines", len(splitLines(a)), len(splitLines(b)))
	}
}

func splitLines(b []byte) []string {
	var out []string
	for len(b) > 0 {
		i := slices.Index(b, '\n')
		if i < 0 {
			i = len(b) - 1
		}
		out = append(out, string(b[:i+1]))
		b = b[i+1:]
	}
	return out
}

// TestReplayOfADamagedLog: a corrupt closed segment that the daemon has
// not salvaged yet (replay opens the log read-only, it cannot) is skipped
// and counted as missing records; the rest is replayed.
func TestReplayOfADamagedLog(t *testing.T) {
	dir := t.TempDir()
	recs := history{series: 10, seconds: 300, seed: 12}.records()
	writeLogSegments(t, Layout{dir}.WAL(), recs, 16<<10)
	segs, _ := filepath.Glob(filepath.Join(Layout{dir}.WAL(), "*.wal"))
	if len(segs) < 3 {
		t.Fatalf("%d segments", len(segs))
	}
	b, err := os.ReadFile(segs[1])
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0xff
	if err := os.WriteFile(segs[1], b, 0o640); err != nil {
		t.Fatal(err)
	}
	sum := runReplay(t, context.Background(), Options{DataDir: dir, Version: "v2", Aggregate: testOptions(), Workers: 2})
	if sum.Gaps == 0 || sum.ThroughLSN != uint64(len(recs)) || sum.Records+sum.Gaps != uint64(len(recs)) {
		t.Fatalf("%+v", sum)
	}
	after, _ := os.ReadFile(segs[1])
	if string(after) != string(b) {
		t.Fatal("the replay changed the log")
	}
}
