package aggregate

import (
	"math"
	"math/big"
	"math/rand/v2"
	"slices"
	"testing"
)

var distributions = []struct {
	name string
	draw func(*rand.Rand) float64
}{
	{"uniform", func(r *rand.Rand) float64 { return r.Float64() }},
	{"uniform±", func(r *rand.Rand) float64 { return 2*r.Float64() - 1 }},
	{"normal", func(r *rand.Rand) float64 { return r.NormFloat64() }},
	{"temperature", func(r *rand.Rand) float64 { return 20 + 5*r.NormFloat64() }},
	{"lognormal", func(r *rand.Rand) float64 { return math.Exp(2 * r.NormFloat64()) }},
	{"bimodal", func(r *rand.Rand) float64 {
		if r.IntN(3) == 0 {
			return -100 + r.NormFloat64()
		}
		return 1000 + 10*r.NormFloat64()
	}},
	{"zeros", func(r *rand.Rand) float64 {
		if r.IntN(3) == 0 {
			return 0
		}
		return r.NormFloat64()
	}},
	{"integers", func(r *rand.Rand) float64 { return float64(r.IntN(11) - 5) }},
	{"exponential", func(r *rand.Rand) float64 { return r.ExpFloat64() }},
	{"wide", func(r *rand.Rand) float64 { // 1e-6 .. 1e6, both signs
		return math.Copysign(math.Pow(10, 12*r.Float64()-6), r.Float64()-0.5)
	}},
}

var testQuantiles = []float64{0, 0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 1}

// sketchOf builds a window of values the way the aggregator does.
func sketchOf(m *mapping, vs []float64, maxBuckets int32) *cell {
	c := &cell{}
	for i, v := range vs {
		c.add(m, int64(i), v, maxBuckets)
	}
	return c
}

// TestSketchAccuracy: every reported quantile is within α·|x| of the
// exact nearest-rank quantile x, for many distributions and sizes, and a
// sketch merged from parts equals the sketch of the whole.
func TestSketchAccuracy(t *testing.T) {
	sizes := []int{1, 2, 3, 5, 10, 100, 1000, 10000, 100000}
	if testing.Short() || raceEnabled {
		sizes = sizes[:8]
	}
	for _, alpha := range []float64{0.01, 0.001, 0.05} {
		m := newMapping(alpha)
		o, err := (&Options{RelativeAccuracy: alpha}).normalize()
		if err != nil {
			t.Fatal(err)
		}
		maxB := int32(o.MaxBuckets)
		for di, d := range distributions {
			for _, n := range sizes {
				rng := rand.New(rand.NewPCG(uint64(n), uint64(di)))
				vs := make([]float64, n)
				for i := range vs {
					vs[i] = d.draw(rng)
				}
				c := sketchOf(&m, vs, maxB)
				if c.sk.collapsed {
					t.Fatalf("%s n=%d α=%v: collapsed", d.name, n, alpha)
				}
				out := make([]Quantile, len(testQuantiles))
				c.sk.quantiles(&m, testQuantiles, out, c.count, c.min, c.max)
				sorted := slices.Clone(vs)
				slices.Sort(sorted)
				for i, q := range out {
					x := ExactQuantile(sorted, testQuantiles[i])
					if err := math.Abs(q.Value - x); err > alpha*math.Abs(x)*(1+1e-9) {
						t.Errorf("%s n=%d α=%v q=%v: %v, exact %v: relative error %.4g", d.name, n, alpha, q.Q, q.Value, x, err/math.Abs(x))
					}
				}
				// Merge of random parts = the whole, bucket for bucket.
				parts := &cell{}
				for lo := 0; lo < n; {
					hi := lo + 1 + rng.IntN(n-lo)
					parts.merge(sketchOf(&m, vs[lo:hi], maxB), maxB)
					lo = hi
				}
				if !sameSketch(&parts.sk, &c.sk) {
					t.Errorf("%s n=%d α=%v: merged sketch differs from the whole", d.name, n, alpha)
				}
			}
		}
	}
}

func sameSketch(x, y *sketch) bool {
	return x.zero == y.zero && x.collapsed == y.collapsed &&
		x.pos.off == y.pos.off && slices.Equal(x.pos.counts, y.pos.counts) &&
		x.neg.off == y.neg.off && slices.Equal(x.neg.counts, y.neg.counts)
}

// TestSketchCollapse: with few buckets, folding depends only on the values,
// not on their order or merge tree, and the collapsed bound holds.
func TestSketchCollapse(t *testing.T) {
	const maxBuckets = 64
	m := newMapping(0.01)
	for i := range iterations(200) {
		rng := rand.New(rand.NewPCG(uint64(i), 5))
		vs := make([]float64, 1+rng.IntN(500))
		for j := range vs {
			vs[j] = math.Copysign(math.Pow(10, 8*rng.Float64()-4), rng.Float64()-0.3)
			if rng.IntN(10) == 0 {
				vs[j] = 0
			}
		}
		whole := sketchOf(&m, vs, maxBuckets)
		rng.Shuffle(len(vs), func(a, b int) { vs[a], vs[b] = vs[b], vs[a] })
		parts := &cell{}
		for lo := 0; lo < len(vs); {
			hi := lo + 1 + rng.IntN(len(vs)-lo)
			parts.merge(sketchOf(&m, vs[lo:hi], maxBuckets), maxBuckets)
			lo = hi
		}
		if !sameSketch(&whole.sk, &parts.sk) {
			t.Fatalf("run %d: folding depends on order", i)
		}
		for _, st := range []*store{&whole.sk.pos, &whole.sk.neg} {
			if n := len(st.counts); n > maxBuckets || (n > 0 && (st.counts[0] == 0 || st.counts[n-1] == 0)) {
				t.Fatalf("run %d: store of %d buckets, not trimmed", i, n)
			}
		}
		slices.Sort(vs)
		out := make([]Quantile, len(testQuantiles))
		whole.sk.quantiles(&m, testQuantiles, out, whole.count, whole.min, whole.max)
		largest := max(math.Abs(vs[0]), math.Abs(vs[len(vs)-1]))
		slack := largest * math.Exp2(-float64(maxBuckets-1)/float64(m.perBinade)+2)
		for k, q := range out {
			x := ExactQuantile(vs, testQuantiles[k])
			if err := math.Abs(q.Value - x); err > 0.01*math.Abs(x)*(1+1e-9)+slack {
				t.Fatalf("run %d q=%v: %v, exact %v (largest %v)", i, q.Q, q.Value, x, largest)
			}
		}
	}
}

func TestMappingBuckets(t *testing.T) {
	for _, alpha := range []float64{0.0001, 0.001, 0.01, 0.02, 0.1, 0.5} {
		m := newMapping(alpha)
		gamma := (1 + alpha) / (1 - alpha)
		// Every bucket's bounds are within γ: check the indexes of
		// consecutive float64s and the representative of each bucket.
		rng := rand.New(rand.NewPCG(1, uint64(alpha*1e6)))
		for range 20000 {
			x := math.Ldexp(1+rng.Float64(), rng.IntN(2000)-1000)
			i := m.index(x)
			if i != m.index(x) || m.index(math.Nextafter(x, math.Inf(1))) < i {
				t.Fatalf("index not monotone at %v", x)
			}
			if v := m.value(i); math.Abs(v-x) > alpha*x*(1+1e-9) {
				t.Fatalf("α=%v: x=%v in bucket %d reported %v", alpha, x, i, v)
			}
		}
		if float64(m.perBinade) > 1.2*math.Ln2/math.Log(gamma)+8 {
			t.Errorf("α=%v: %d buckets per binade, logarithmic needs %.1f", alpha, m.perBinade, math.Ln2/math.Log(gamma))
		}
		for _, x := range []float64{math.SmallestNonzeroFloat64, 0x1p-1022, math.MaxFloat64} {
			if v := m.value(m.index(x)); math.IsInf(v, 0) || v <= 0 {
				t.Errorf("α=%v: extreme %v maps to %v", alpha, x, v)
			}
		}
	}
}

func TestRank(t *testing.T) {
	for _, tc := range []struct {
		q    float64
		n, k uint64
	}{
		{0, 10, 1}, {0.1, 10, 1}, {0.11, 10, 2}, {0.5, 10, 5}, {0.5, 11, 6}, {0.95, 20, 19},
		{0.99, 100, 99}, {0.999, 100, 100}, {1, 7, 7}, {0.5, 1, 1}, {1e-300, 5, 1},
	} {
		if k := rank(tc.q, tc.n); k != tc.k {
			t.Errorf("rank(%v, %d) = %d, want %d", tc.q, tc.n, k, tc.k)
		}
	}
}

// TestExactSum: the accumulator's sum is the correctly rounded exact sum,
// for values across the whole float64 range, with cancellation.
func TestExactSum(t *testing.T) {
	for i := range iterations(300) {
		rng := rand.New(rand.NewPCG(uint64(i), 6))
		var s, s1, s2 exactSum
		ref := new(big.Float).SetPrec(2400).SetMode(big.ToNearestEven)
		for j := range 1 + rng.IntN(200) {
			var x float64
			switch rng.IntN(6) {
			case 0:
				x = math.Ldexp(rng.Float64(), rng.IntN(2100)-1075) // anywhere, subnormals too
			case 1:
				x = math.Float64frombits(rng.Uint64() &^ (0x7ff << 52)) // subnormal
			case 2:
				x = math.MaxFloat64 * rng.Float64()
			case 3:
				x = rng.NormFloat64() * 1e16
			default:
				x = float64(rng.IntN(1000)) / 10
			}
			if rng.IntN(2) == 0 {
				x = -x
			}
			s.add(x)
			if j%2 == 0 {
				s1.add(x)
			} else {
				s2.add(x)
			}
			ref.Add(ref, new(big.Float).SetFloat64(x))
			if rng.IntN(4) == 0 { // cancel it again, later
				s.add(-x)
				s2.add(-x)
				ref.Sub(ref, new(big.Float).SetFloat64(x))
			}
		}
		want, _ := ref.Float64()
		if got := s.float(); got != want && !(math.IsInf(got, 0) && math.IsInf(want, 0)) {
			t.Fatalf("run %d: sum %v, want %v", i, got, want)
		}
		s1.merge(&s2)
		if s1 != s {
			t.Fatalf("run %d: merged accumulator differs", i)
		}
	}
	// Order independence where float64 addition is not.
	var a, b exactSum
	for _, x := range []float64{1e16, 1, -1e16, 0.5} {
		a.add(x)
	}
	for _, x := range []float64{0.5, 1, 1e16, -1e16} {
		b.add(x)
	}
	if a.float() != 1.5 || b.float() != 1.5 {
		t.Fatalf("sums %v and %v, want 1.5", a.float(), b.float())
	}
}
