package alerts

import (
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/edged-io/edged"
	"github.com/edged-io/edged/aggregate"
)

func sec(n float64) Duration { return Duration(n * float64(time.Second)) }

// propRules use every kind of rule, for, renotify, globs and windows.
var propRules = []Rule{
	{Name: "hot", Series: "*", Above: f(25), ClearBelow: f(23), For: sec(5), Renotify: sec(20)},
	{Name: "cold", Series: "room-*/*", Below: f(15), ClearAbove: f(16), Severity: "info"},
	{Name: "rise", Series: "*", RateAbove: f(1), ClearBelow: f(0.2)},
	{Name: "fall", Series: "*", Device: "pi-1", RateBelow: f(-1), For: sec(2)},
	{Name: "gone", Series: "*", Absent: sec(10), Renotify: sec(30)},
	{Name: "gone-for", Series: "room-1/*", Absent: sec(5), For: sec(5)},
	{Name: "wmean", Series: "*", Window: sec(10), Aggregate: "mean", Above: f(24), ClearBelow: f(22)},
	{Name: "wp95", Series: "*", Window: sec(10), Aggregate: "p95", Above: f(26), For: sec(10)},
	{Name: "wrate", Series: "*", Window: sec(60), Aggregate: "max", RateAbove: f(0.02), ClearBelow: f(0)},
}

// input is one call into the engine.
type input struct {
	kind byte // 'r'eading, 'w'indow, 't'ick
	r    edged.Reading
	w    aggregate.Window
	now  int64
	lsn  uint64
}

func (in *input) apply(e *Engine, emit func(Event)) {
	switch in.kind {
	case 'r':
		e.Reading(&in.r, emit)
	case 'w':
		e.Window(&in.w, emit)
	default:
		e.Tick(in.now, in.lsn, emit)
	}
}

// genInputs returns a random but reproducible stream: readings (several
// per record), windows, ticks, noisy values around the thresholds,
// untrusted and invalid readings, silences, out-of-order readings and
// clock steps.
func genInputs(rng *rand.Rand, n int) []input {
	devices := []string{"pi-1", "pi-2"}
	names := []string{"temp", "hum", "room-1/temp", "room-2/hum", "lab/x"}
	now := t0
	level := make([]float64, len(devices)*len(names))
	silent := make([]int64, len(level))
	for i := range level {
		level[i] = 21 + 3*rng.NormFloat64()
	}
	var out []input
	for lsn := uint64(1); len(out) < n; lsn++ {
		now += rng.Int64N(int64(3 * time.Second))
		if rng.IntN(100) == 0 {
			now += int64(2*time.Hour) * (1 - 2*rng.Int64N(2)) // the clock set
		}
		switch p := rng.Float64(); {
		case p < 0.2:
			out = append(out, input{kind: 't', now: now, lsn: lsn})
		case p < 0.3:
			for range 1 + rng.IntN(3) {
				si := rng.IntN(len(level))
				size := []time.Duration{10 * time.Second, time.Minute, 5 * time.Second}[rng.IntN(3)]
				w := aggregate.Window{Device: devices[si%2], Series: names[si/2], Size: size, CloseLSN: lsn,
					Count: uint64(1 + rng.IntN(20)), Amended: rng.IntN(10) == 0}
				w.Start = (now - int64(size)) / int64(size) * int64(size)
				w.End = w.Start + int64(size)
				v := level[si] + 3*rng.NormFloat64()
				w.Mean, w.Min, w.Max, w.Sum = v, v-2, v+2, v*float64(w.Count)
				if rng.IntN(4) != 0 {
					w.Quantiles = []aggregate.Quantile{{Q: 0.5, Value: v}, {Q: 0.95, Value: v + 1.5}}
				}
				out = append(out, input{kind: 'w', w: w})
			}
		default:
			for range 1 + rng.IntN(3) {
				si := rng.IntN(len(level))
				if now < silent[si] {
					continue
				}
				if rng.IntN(30) == 0 {
					silent[si] = now + rng.Int64N(int64(40*time.Second))
				}
				level[si] += rng.NormFloat64()
				r := edged.Reading{Device: devices[si%2], Series: names[si/2], Value: level[si] + rng.NormFloat64(),
					Time: now - rng.Int64N(int64(2*time.Second)), Ingest: now, LSN: lsn}
				switch rng.IntN(40) {
				case 0:
					r.Flags = edged.ClockUnsynced
				case 1:
					r.Value = math.NaN()
				case 2:
					r.Value = math.Inf(-1)
				case 3:
					r.Ingest -= int64(time.Second) // stamped before the latest tick
				}
				out = append(out, input{kind: 'r', r: r})
			}
		}
	}
	return out[:n]
}

func feed(e *Engine, ins []input, emit func(Event)) {
	for i := range ins {
		ins[i].apply(e, emit)
	}
}

func collect(out *[]string) func(Event) {
	id := func(s string) string { return s }
	return func(ev Event) { *out = append(*out, formatEvent(ev, id)) }
}

func mustNew(t testing.TB, rules []Rule, o Options) *Engine {
	e, err := New(rules, o)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// TestCheckpointResume: at a random point, checkpoint, restore into a
// fresh Engine and continue: the events (ids included), the alerts and the
// final state equal those of an uninterrupted run.
func TestCheckpointResume(t *testing.T) {
	iters := 200
	if testing.Short() {
		iters = 20
	}
	for i := range iters {
		rng := rand.New(rand.NewPCG(uint64(i), 2))
		ins := genInputs(rng, 600)
		var want []string
		ref := mustNew(t, propRules, Options{})
		feed(ref, ins, collect(&want))
		wantState, _ := ref.MarshalBinary()
		if i == 0 && len(want) < 100 {
			t.Fatalf("only %d events: the stream does not exercise the rules", len(want))
		}
		for range 3 {
			cut := rng.IntN(len(ins) + 1)
			var got []string
			a := mustNew(t, propRules, Options{})
			feed(a, ins[:cut], collect(&got))
			b, err := a.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			r := mustNew(t, propRules, Options{})
			if err := r.UnmarshalBinary(b); err != nil {
				t.Fatalf("stream %d cut %d: %v", i, cut, err)
			}
			if !equalAlerts(r.Alerts(), a.Alerts()) {
				t.Fatalf("stream %d cut %d: alerts differ after restore", i, cut)
			}
			feed(r, ins[cut:], collect(&got))
			if !slices.Equal(got, want) {
				t.Fatalf("stream %d, checkpoint after %d of %d inputs: events differ\n%s", i, cut, len(ins), firstDiff(got, want))
			}
			if state, _ := r.MarshalBinary(); !slices.Equal(state, wantState) {
				t.Fatalf("stream %d, checkpoint after %d: final state differs", i, cut)
			}
			if !equalAlerts(r.Alerts(), ref.Alerts()) {
				t.Fatalf("stream %d, checkpoint after %d: final alerts differ", i, cut)
			}
		}
	}
}

func equalAlerts(a, b []Alert) bool {
	return slices.EqualFunc(a, b, func(x, y Alert) bool {
		return x.Rule == y.Rule && x.Device == y.Device && x.Series == y.Series && x.State == y.State &&
			math.Float64bits(x.Value) == math.Float64bits(y.Value) && x.Threshold == y.Threshold &&
			x.Started == y.Started && x.Since == y.Since && x.ID == y.ID && x.Severity == y.Severity &&
			len(x.Labels) == len(y.Labels)
	})
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
			return "event " + strconv.Itoa(i) + ":\n  got:  " + g + "\n  want: " + w
		}
	}
	return "no difference"
}

// TestEventOrder: (LSN, Seq) strictly increases, every cycle's events share
// one id, ids are not reused, and transitions follow the state machine.
func TestEventOrder(t *testing.T) {
	for i := range 20 {
		ins := genInputs(rand.New(rand.NewPCG(uint64(i), 3)), 2000)
		e := mustNew(t, propRules, Options{})
		var prev *Event
		type key struct{ rule, device, series string }
		cur := map[key]Event{}
		closed := map[string]bool{}
		feed(e, ins, func(ev Event) {
			if prev != nil && (ev.LSN < prev.LSN || ev.LSN == prev.LSN && ev.Seq != prev.Seq+1) ||
				prev == nil && ev.Seq != 0 || prev != nil && ev.LSN > prev.LSN && ev.Seq != 0 {
				t.Fatalf("event (%d, %d) after (%d, %d)", ev.LSN, ev.Seq, prev.LSN, prev.Seq)
			}
			prev = &ev
			k := key{ev.Rule, ev.Device, ev.Series}
			last, ok := cur[k]
			open := ok && (last.State == StatePending || last.State == StateFiring)
			switch {
			case ev.Renotify:
				if !open || last.State != StateFiring || ev.ID != last.ID || ev.State != StateFiring {
					t.Fatalf("renotify %+v after %+v", ev, last)
				}
			case open:
				if ev.ID != last.ID || !allowed(last.State, ev.State) {
					t.Fatalf("%s → %s (%s → %s)", last.State, ev.State, last.ID, ev.ID)
				}
			default:
				if closed[ev.ID] || ev.State != StatePending && ev.State != StateFiring {
					t.Fatalf("new cycle %+v", ev)
				}
			}
			if ev.State == StateResolved || ev.State == StateInactive {
				closed[ev.ID] = true
			}
			cur[k] = ev
		})
	}
}

func allowed(from, to string) bool {
	switch from {
	case StatePending:
		return to == StateFiring || to == StateInactive
	case StateFiring:
		return to == StateResolved
	}
	return false
}

// TestConcurrentAlerts: Alerts and Counts may be called from other
// goroutines (HTTP handlers, metrics) while the stream feeds the engine
// and restores checkpoints. Run with -race.
func TestConcurrentAlerts(t *testing.T) {
	ins := genInputs(rand.New(rand.NewPCG(1, 4)), 3000)
	e := mustNew(t, propRules, Options{})
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-done:
				return
			default:
			}
			e.Counts()
			if as := e.Alerts(); len(as) > 0 && as[0].ID == "" {
				t.Error("alert without id")
			}
		}
	})
	for i := range ins {
		ins[i].apply(e, nil)
		if i == len(ins)/2 {
			b, _ := e.MarshalBinary()
			if err := e.UnmarshalBinary(b); err != nil {
				t.Error(err)
			}
		}
	}
	close(done)
	wg.Wait()
	c := e.Counts()
	if got := c["pending"] + c["firing"] + c["resolved"]; got != len(e.Alerts()) {
		t.Fatalf("Counts %v for %d alerts", c, len(e.Alerts()))
	}
}
