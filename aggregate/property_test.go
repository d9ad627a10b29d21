package aggregate

import (
	"cmp"
	"fmt"
	"math"
	"math/big"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/edged-io/edged"
)

var troubled = streamConfig{series: 8, records: 600, perRecord: 4, disorder: 0.1, repeats: 0.05, bad: 0.05, ticks: 0.1, gaps: 0.01}

// TestCheckpointResume: at a random point, checkpoint, restore into a fresh
// Aggregator and continue: the emitted sequence and the final state equal
// those of an uninterrupted run, byte for byte.
func TestCheckpointResume(t *testing.T) {
	opts := []Options{{}, {Windows: []time.Duration{2 * time.Second, 10 * time.Second, time.Minute}, Lateness: 2 * time.Second, IdleAfter: 10 * time.Second, MaxPending: 16, MaxBuckets: 64}}
	for i := range iterations(60) {
		rng := rand.New(rand.NewPCG(uint64(i), 1))
		o := opts[i%len(opts)]
		es := genStream(rng, troubled)

		var want []byte
		var wantWs []Window
		ref := mustNew(o)
		feed(ref, es, record(&want, &wantWs), t.Fatal)
		wantState, _ := ref.MarshalBinary()

		for range 3 {
			cut := rng.IntN(len(es) + 1)
			var got []byte
			var gotWs []Window
			a := mustNew(o)
			feed(a, es[:cut], record(&got, &gotWs), t.Fatal)
			b, err := a.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			r := mustNew(o)
			if err := r.UnmarshalBinary(b); err != nil {
				t.Fatalf("stream %d cut %d: %v", i, cut, err)
			}
			if r.LastLSN() != a.LastLSN() {
				t.Fatalf("LastLSN %d after restore, want %d", r.LastLSN(), a.LastLSN())
			}
			// A record at or below LastLSN is refused and changes nothing.
			if cut > 0 {
				if err := r.Apply(es[cut-1].rec, es[cut-1].lsn, nil); err == nil {
					t.Fatalf("re-applying LSN %d succeeded", es[cut-1].lsn)
				}
			}
			feed(r, es[cut:], record(&got, &gotWs), t.Fatal)
			if !slices.Equal(got, want) {
				t.Fatalf("stream %d, checkpoint after %d of %d records: emitted sequence differs\n%s",
					i, cut, len(es), firstDiff(formatAll(gotWs), formatAll(wantWs)))
			}
			if state, _ := r.MarshalBinary(); !slices.Equal(state, wantState) {
				t.Fatalf("stream %d, checkpoint after %d: final state differs", i, cut)
			}
		}
	}
}

func formatAll(ws []Window) []string {
	out := make([]string, len(ws))
	for i, w := range ws {
		out[i] = formatWindow(w)
	}
	return out
}

func firstDiff(got, want []string) string {
	for i := range max(len(got), len(want)) {
		var g, w string
		if i < len(got) {
			g = got[i]
		}
		if i < len(want) {
			w = want[i]
		}
		if g != w {
			return fmt.Sprintf("at %d:\n got: %s\nwant: %s", i, g, w)
		}
	}
	return ""
}

// finalTick closes every window and flushes every amendment.
func finalTick(a *Aggregator, emit func(Window)) {
	a.Tick(math.MaxInt64, a.LastLSN()+1, emit)
}

// TestConservation: every reading in the log is accounted for exactly once
// on the window of every size that holds its event time, across the
// window's emission and its amendments; and once in its series' totals.
func TestConservation(t *testing.T) {
	for i := range iterations(60) {
		rng := rand.New(rand.NewPCG(uint64(i), 2))
		o := Options{}
		if i%2 == 1 {
			o = Options{Windows: []time.Duration{2 * time.Second, 6 * time.Second, time.Minute}, MaxPending: 16, IdleAfter: 5 * time.Second}
		}
		a := mustNew(o)
		type key struct {
			s     string
			size  time.Duration
			start int64
		}
		got := map[key]uint64{}
		emitted := map[key]bool{}
		emit := func(w Window) {
			k := key{w.Device + "|" + w.Series + "|" + w.Unit, w.Size, w.Start}
			if !w.Amended {
				if emitted[k] {
					t.Fatalf("window %v emitted twice", k)
				}
				emitted[k] = true
			}
			got[k] += w.Count + w.Total()
		}
		es := genStream(rng, troubled)
		feed(a, es, emit, t.Fatal)
		finalTick(a, emit)

		want := map[key]uint64{}
		perSeries := map[string]uint64{}
		for _, e := range es {
			for _, r := range e.rs {
				s := r.Device + "|" + r.Series + "|" + r.Unit
				perSeries[s]++
				if r.Time < hardMin || r.Time >= hardMax {
					continue
				}
				for _, size := range a.Options().Windows {
					start, _ := Bounds(r.Time, size)
					want[key{s, size, start}]++
				}
			}
		}
		if len(got) != len(want) {
			t.Errorf("stream %d: %d windows accounted, want %d", i, len(got), len(want))
		}
		for k, n := range want {
			if got[k] != n {
				t.Errorf("stream %d: window %v accounts for %d readings, the log has %d", i, k, got[k], n)
			}
		}
		for _, st := range a.Stats() {
			s := st.Device + "|" + st.Series + "|" + st.Unit
			if st.Accepted+st.Total() != perSeries[s] {
				t.Errorf("stream %d: series %s totals %d, the log has %d", i, s, st.Accepted+st.Total(), perSeries[s])
			}
			if st.OpenWindows != 0 || st.Pending != 0 {
				t.Errorf("stream %d: series %s still has %d open windows, %d amendments after the final tick", i, s, st.OpenWindows, st.Pending)
			}
		}
		if t.Failed() {
			return
		}
	}
}

// TestOutOfOrder: readings shuffled so that none arrives before its
// series' frontier give the same windows as sorted input.
func TestOutOfOrder(t *testing.T) {
	for i := range iterations(40) {
		rng := rand.New(rand.NewPCG(uint64(i), 3))
		o := Options{}
		if i%2 == 1 {
			o = Options{Windows: []time.Duration{time.Second, 3 * time.Second, 15 * time.Second}, Lateness: 2 * time.Second}
		}
		a := mustNew(o)
		late := int64(a.opts.lateness())
		var rs []edged.Reading
		for s := range 4 {
			tm := t0 + rng.Int64N(int64(time.Second))
			for range 300 {
				tm += 1 + rng.Int64N(int64(700*time.Millisecond))
				n := seriesNames[s]
				rs = append(rs, edged.Reading{Device: n.device, Series: n.series, Unit: n.unit, Time: tm, Ingest: tm, Value: genValue(rng, s)})
			}
		}
		// Arrival order: event time plus a delay of at most the lateness.
		delay := make([]int64, len(rs))
		for j := range delay {
			delay[j] = rng.Int64N(late + 1)
		}
		shuffled := make([]int, len(rs))
		for j := range shuffled {
			shuffled[j] = j
		}
		slices.SortStableFunc(shuffled, func(x, y int) int {
			return cmp.Compare(rs[x].Time+delay[x], rs[y].Time+delay[y])
		})
		sorted := make([]int, len(rs))
		for j := range sorted {
			sorted[j] = j
		}
		slices.SortStableFunc(sorted, func(x, y int) int { return cmp.Compare(rs[x].Time, rs[y].Time) })

		run := func(order []int) [][]byte {
			var ws []Window
			emit := func(w Window) { ws = append(ws, w) }
			a := mustNew(o)
			for lsn, j := range order {
				r := rs[j]
				r.LSN = uint64(lsn + 1)
				a.Add(r, emit)
			}
			finalTick(a, emit)
			slices.SortFunc(ws, func(x, y Window) int {
				return cmp.Or(cmp.Compare(x.Device, y.Device), cmp.Compare(x.Series, y.Series),
					cmp.Compare(x.Unit, y.Unit), cmp.Compare(x.Size, y.Size), cmp.Compare(x.Start, y.Start))
			})
			var out [][]byte
			for _, w := range ws {
				if w.Amended || w.Total() != 0 {
					t.Fatalf("a reading was refused: %s", formatWindow(w))
				}
				w.CloseLSN = 0
				out = append(out, appendWindow(nil, w))
			}
			return out
		}
		want, got := run(sorted), run(shuffled)
		if !slices.EqualFunc(got, want, slices.Equal) {
			t.Fatalf("run %d: shuffled input gives other windows", i)
		}
	}
}

// TestAggregatesExact: with every reading accepted, every window of every
// size has the exact count, min, max, first, last and correctly rounded
// sum of its readings, and quantiles within the bound; so a 1h window is
// the merge of its 10s windows.
func TestAggregatesExact(t *testing.T) {
	qs := []float64{0, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 1}
	for i := range iterations(12) {
		rng := rand.New(rand.NewPCG(uint64(i), 4))
		o := Options{Quantiles: qs}
		if i%3 == 2 {
			o.RelativeAccuracy = 0.001
		}
		a := mustNew(o)
		alpha := a.opts.RelativeAccuracy
		type key struct {
			series int
			size   time.Duration
			start  int64
		}
		vals := map[key][]edged.Reading{}
		got := map[key]Window{}
		emit := func(w Window) {
			s := slices.IndexFunc(seriesNames, func(n struct{ device, series, unit string }) bool {
				return n.device == w.Device && n.series == w.Series && n.unit == w.Unit
			})
			got[key{s, w.Size, w.Start}] = w
		}
		for s := range 5 {
			tm := t0 + rng.Int64N(int64(time.Hour))
			for range 2000 + rng.IntN(2000) {
				tm += 1 + rng.Int64N(int64(3*time.Second))
				n := seriesNames[s]
				r := edged.Reading{Device: n.device, Series: n.series, Unit: n.unit, Time: tm, Ingest: tm, Value: genValue(rng, s)}
				if s == 4 {
					r.Value *= math.Pow(10, float64(rng.IntN(30)-15)) // wide range, cancellation
				}
				a.Add(r, emit)
				for _, size := range a.opts.Windows {
					start, _ := Bounds(tm, size)
					vals[key{s, size, start}] = append(vals[key{s, size, start}], r)
				}
			}
		}
		finalTick(a, emit)
		if len(got) != len(vals) {
			t.Fatalf("%d windows emitted, want %d", len(got), len(vals))
		}
		for k, rs := range vals {
			w := got[k]
			sum := new(big.Float).SetPrec(4096)
			var sorted []float64
			for _, r := range rs {
				sum.Add(sum, new(big.Float).SetFloat64(r.Value))
				sorted = append(sorted, r.Value)
			}
			slices.Sort(sorted)
			exactSum, _ := sum.Float64()
			if w.Count != uint64(len(rs)) || w.Sum != exactSum || w.Min != sorted[0] || w.Max != sorted[len(sorted)-1] ||
				w.First != (Point{rs[0].Time, rs[0].Value}) || w.Last != (Point{rs[len(rs)-1].Time, rs[len(rs)-1].Value}) {
				t.Fatalf("window %v: %s\nwant n=%d sum=%v min=%v max=%v", k, formatWindow(w), len(rs), exactSum, sorted[0], sorted[len(sorted)-1])
			}
			for _, q := range w.Quantiles {
				x := ExactQuantile(sorted, q.Q)
				if math.Abs(q.Value-x) > alpha*math.Abs(x)*(1+1e-12) && !w.Collapsed {
					t.Fatalf("window %v: q%v = %v, exact %v: error %.3g > α = %v", k, q.Q, q.Value, x, math.Abs(q.Value-x)/math.Abs(x), alpha)
				}
			}
		}
	}
}

// TestApplyErrors: bad records change nothing.
func TestApplyErrors(t *testing.T) {
	a := mustNew(Options{})
	rec, _ := edged.AppendRecord(nil, []edged.Reading{{Device: "d", Series: "s", Time: t0, Ingest: t0, Value: 1}})
	if err := a.Apply(rec, 5, nil); err != nil {
		t.Fatal(err)
	}
	before, _ := a.MarshalBinary()
	for _, tc := range []struct {
		rec  []byte
		lsn  uint64
		want error
	}{
		{rec, 5, ErrAlreadyApplied},
		{rec, 4, ErrAlreadyApplied},
		{rec[:len(rec)-1], 6, edged.ErrBadRecord},
		{append(slices.Clone(rec), 0), 6, edged.ErrBadRecord},
		{nil, 6, ErrUnknownKind},
		{[]byte{9, 1, 2}, 6, ErrUnknownKind},
		{append(edged.AppendTick(nil, t0), 1), 6, edged.ErrBadRecord},
	} {
		if err := a.Apply(tc.rec, tc.lsn, nil); !errorsIs(err, tc.want) {
			t.Errorf("Apply(% x, %d) = %v, want %v", tc.rec, tc.lsn, err, tc.want)
		}
	}
	if after, _ := a.MarshalBinary(); !slices.Equal(before, after) {
		t.Fatal("a refused record changed the state")
	}
	if a.LastLSN() != 5 {
		t.Fatalf("LastLSN = %d", a.LastLSN())
	}
}

func TestCheckpointOptions(t *testing.T) {
	a := mustNew(Options{})
	a.Add(edged.Reading{Device: "d", Series: "s", Time: t0, Ingest: t0, Value: 1, LSN: 1}, nil)
	b, _ := a.MarshalBinary()
	other := mustNew(Options{Lateness: time.Second})
	if err := other.UnmarshalBinary(b); !errorsIs(err, ErrCheckpointOptions) {
		t.Fatalf("got %v, want ErrCheckpointOptions", err)
	}
	var zero Aggregator // adopts the checkpoint's options
	if err := zero.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	if b2, _ := zero.MarshalBinary(); !slices.Equal(b, b2) {
		t.Fatal("zero Aggregator did not restore the same state")
	}
	b[len(b)/2] ^= 1
	if err := zero.UnmarshalBinary(b); !errorsIs(err, ErrCheckpoint) {
		t.Fatalf("corrupt checkpoint: %v", err)
	}
}

func TestOptionsValidate(t *testing.T) {
	for _, tc := range []struct {
		o  Options
		ok bool
	}{
		{Options{}, true},
		{Options{Windows: []time.Duration{time.Hour, 10 * time.Second, time.Minute}}, true},
		{Options{Windows: []time.Duration{10 * time.Second, 15 * time.Second}}, false},
		{Options{Windows: []time.Duration{10 * time.Second, 10 * time.Second}}, false},
		{Options{Windows: []time.Duration{}}, false},
		{Options{Windows: []time.Duration{time.Microsecond}}, false},
		{Options{Windows: []time.Duration{8 * 24 * time.Hour}}, false},
		{Options{Lateness: -1}, true},
		{Options{Lateness: 25 * time.Hour}, false},
		{Options{Quantiles: []float64{}}, true},
		{Options{Quantiles: []float64{0, 1}}, true},
		{Options{Quantiles: []float64{1.5}}, false},
		{Options{Quantiles: []float64{math.NaN()}}, false},
		{Options{Quantiles: []float64{0.5, 0.5}}, false},
		{Options{RelativeAccuracy: 0.6}, false},
		{Options{RelativeAccuracy: 1e-5}, false},
		{Options{MaxFuture: -time.Second}, false},
		{Options{MinTime: time.Date(1800, 1, 1, 0, 0, 0, 0, time.UTC)}, false},
		{Options{MaxBuckets: 10}, false},
		{Options{MaxPending: 1}, false},
	} {
		if err := tc.o.Validate(); (err == nil) != tc.ok {
			t.Errorf("%+v: Validate() = %v", tc.o, err)
		}
	}
}
