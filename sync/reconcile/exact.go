package reconcile

import (
	"encoding/binary"
	"hash/fnv"
	"math"
	"math/big"
	"slices"
	"sort"
	"strconv"

	"github.com/edged-io/edged/aggregate"
)

// rawPoint is one edged_reading point: the value InfluxDB kept for an
// identity (the last one written) and the LSN of the record it came from.
type rawPoint struct {
	Time  int64
	Value float64
	LSN   uint64
}

// exact holds the exact aggregates of one window, computed from the raw
// points whose event time falls in it.
type exact struct {
	Count               uint64
	Sum, Mean, Min, Max float64
	First, Last         float64
	// sorted are the values in ascending order, for quantiles.
	sorted []float64
	// MinLSN and MaxLSN span the LSNs of the points (0 when Count is 0).
	MinLSN, MaxLSN uint64
	// Digest is a hash of the (time, value) pairs in time order: it
	// changes whenever the raw data of the window does.
	Digest string
	// magnitude range of each sign, for the collapsed-sketch bound.
	posMin, posMax, negMin, negMax float64
}

// sumPrec holds any sum of float64 values exactly: finite doubles are
// multiples of 2^-1074 below 2^1024 (2098 bits), plus room for carries.
const sumPrec = 2200

// exactSum returns the sum of values rounded once to the nearest float64
// (ties to even): the correctly rounded sum, which is what the edge's
// fixed-point accumulator computes (aggregate.Window.Sum), so equal inputs
// give equal bits whatever the order of the additions.
func exactSum(values []float64) float64 {
	var acc, x big.Float
	acc.SetPrec(sumPrec)
	x.SetPrec(53)
	for _, v := range values {
		if v == 0 {
			continue
		}
		x.SetFloat64(v)
		acc.Add(&acc, &x)
	}
	f, _ := acc.Float64()
	return f
}

// computeExact aggregates pts, which must be sorted by time with unique
// times (InfluxDB keeps one point per identity).
func computeExact(pts []rawPoint) exact {
	e := exact{Count: uint64(len(pts)), posMin: math.Inf(1), negMin: math.Inf(1)}
	if len(pts) == 0 {
		e.Digest = digest(pts)
		return e
	}
	e.sorted = make([]float64, len(pts))
	e.Min, e.Max = math.Inf(1), math.Inf(-1)
	e.MinLSN = math.MaxUint64
	for i, p := range pts {
		v := p.Value
		e.sorted[i] = v
		e.Min = min(e.Min, v)
		e.Max = max(e.Max, v)
		e.MinLSN = min(e.MinLSN, p.LSN)
		e.MaxLSN = max(e.MaxLSN, p.LSN)
		switch m := math.Abs(v); {
		case v > 0:
			e.posMin, e.posMax = min(e.posMin, m), max(e.posMax, m)
		case v < 0:
			e.negMin, e.negMax = min(e.negMin, m), max(e.negMax, m)
		}
	}
	e.First, e.Last = pts[0].Value, pts[len(pts)-1].Value
	e.Sum = exactSum(e.sorted)
	e.Mean = e.Sum / float64(e.Count)
	slices.Sort(e.sorted)
	e.Digest = digest(pts)
	return e
}

// Quantile returns the exact q-quantile by the sketch's definition
// (aggregate.ExactQuantile: nearest rank), NaN for an empty window.
func (e *exact) Quantile(q float64) float64 {
	if len(e.sorted) == 0 {
		return math.NaN()
	}
	return aggregate.ExactQuantile(e.sorted, q)
}

// magnitudeSpan returns the ratio of the largest to the smallest non-zero
// magnitude among the values of x's sign (1 when there are none).
func (e *exact) magnitudeSpan(x float64) (ratio, largest float64) {
	switch {
	case x > 0 && e.posMax > 0:
		return e.posMax / e.posMin, e.posMax
	case x < 0 && e.negMax > 0:
		return e.negMax / e.negMin, e.negMax
	}
	return 1, math.Abs(x)
}

func digest(pts []rawPoint) string {
	h := fnv.New64a()
	var b [16]byte
	for _, p := range pts {
		binary.LittleEndian.PutUint64(b[:8], uint64(p.Time))
		binary.LittleEndian.PutUint64(b[8:], math.Float64bits(p.Value))
		h.Write(b[:])
	}
	return strconv.FormatUint(h.Sum64(), 16)
}

// inWindow returns the points of pts (sorted by time) in [start, end).
func inWindow(pts []rawPoint, start, end int64) []rawPoint {
	i := sort.Search(len(pts), func(i int) bool { return pts[i].Time >= start })
	j := sort.Search(len(pts), func(i int) bool { return pts[i].Time >= end })
	return pts[i:j]
}
