package reconcile

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/edged-io/edged"
	"github.com/edged-io/edged/aggregate"
)

// edgeWindow runs the real aggregator over values (one a second from a
// window start) and returns the window it emits.
func edgeWindow(t *testing.T, values []float64) aggregate.Window {
	t.Helper()
	a, err := aggregate.New(aggregate.Options{Windows: []time.Duration{time.Hour}, Lateness: -1})
	if err != nil {
		t.Fatal(err)
	}
	base := time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	var got []aggregate.Window
	emit := func(w aggregate.Window) { got = append(got, w) }
	for i, v := range values {
		ts := base + int64(i)*int64(time.Millisecond)
		a.Add(edged.Reading{Device: "d", Series: "s", Value: v, Time: ts, Ingest: ts, LSN: uint64(i + 1)}, emit)
	}
	a.Tick(base+int64(48*time.Hour), uint64(len(values)+1), emit)
	if len(got) != 1 || got[0].Count != uint64(len(values)) {
		t.Fatalf("aggregator emitted %d windows (%+v), want 1 of %d readings", len(got), got, len(values))
	}
	return got[0]
}

// TestExactMatchesTheEdge checks that the batch layer's exact aggregates
// are bit for bit the edge's (the aggregator's exact sum is the correctly
// rounded sum; so is exactSum), on values chosen to make naive summation
// wrong: cancellation, wide exponent ranges, subnormals.
func TestExactMatchesTheEdge(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	cases := map[string][]float64{
		"small":        {0.1, 0.2, 0.3},
		"cancellation": {1e16, 1, -1e16, 1, 3.5, -2.25},
		"subnormal":    {5e-324, 5e-324, -1e-310, 2.5e-308},
		"huge":         {1.7e308, -1.7e308, 1e292, 1},
		"zeros":        {0, math.Copysign(0, -1), 0},
	}
	for n := range 20 {
		vs := make([]float64, 1+rng.IntN(400))
		for i := range vs {
			switch n % 3 {
			case 0:
				vs[i] = rng.NormFloat64()*10 + 20
			case 1:
				vs[i] = math.Ldexp(rng.Float64()-0.5, rng.IntN(200)-100)
			default:
				vs[i] = float64(rng.IntN(2000)-1000) / 3
			}
		}
		cases["random"+string(rune('a'+n))] = vs
	}
	for name, vs := range cases {
		t.Run(name, func(t *testing.T) {
			w := edgeWindow(t, vs)
			pts := make([]rawPoint, len(vs))
			for i, v := range vs {
				pts[i] = rawPoint{Time: int64(i), Value: v, LSN: uint64(i + 1)}
			}
			ex := computeExact(pts)
			if math.Float64bits(ex.Sum) != math.Float64bits(w.Sum) && !(ex.Sum == 0 && w.Sum == 0) {
				t.Errorf("sum %v (%x), edge %v (%x)", ex.Sum, math.Float64bits(ex.Sum), w.Sum, math.Float64bits(w.Sum))
			}
			if ex.Mean != w.Mean || ex.Min != w.Min || ex.Max != w.Max || ex.First != w.First.Value || ex.Last != w.Last.Value {
				t.Errorf("exact %+v, edge %+v", ex, w)
			}
			for _, q := range w.Quantiles {
				x := ex.Quantile(q.Q)
				if !withinSketchBound(q.Value, x, 0.01, &ex) {
					t.Errorf("p%g: edge %v, exact %v: outside the sketch bound", q.Q*100, q.Value, x)
				}
			}
		})
	}
}

func TestInWindow(t *testing.T) {
	pts := []rawPoint{{Time: 0}, {Time: 5}, {Time: 10}, {Time: 19}, {Time: 20}}
	if got := inWindow(pts, 10, 20); len(got) != 2 || got[0].Time != 10 || got[1].Time != 19 {
		t.Fatalf("inWindow = %+v", got)
	}
	if got := inWindow(pts, 21, 30); len(got) != 0 {
		t.Fatalf("inWindow past the end = %+v", got)
	}
}
