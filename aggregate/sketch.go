package aggregate

import (
	"math"
	"math/bits"
)

// The quantile sketch is DDSketch-shaped (Masson, Rim, Lee: "DDSketch: a
// fast and fully-mergeable quantile sketch with relative-error guarantees",
// VLDB 2019): values are counted in buckets whose upper bound is at most
// γ = (1+α)/(1−α) times their lower bound, one set of buckets for positive
// values, one for the magnitudes of negative values and a counter for zero.
// Reporting a bucket by 2·lo·hi/(lo+hi) is then within α of every value in
// it, relative to that value.
//
// The index is computed with integer arithmetic only (no math.Log), so it
// is the same on every architecture: each binade [2^e, 2^(e+1)) is split
// into 8 equal segments by the top three fraction bits, and segment s into
// n_s equal buckets, n_s the least integer that keeps every bucket's
// ratio below γ. That costs about 16 % more buckets than logarithmic ones
// (40 instead of 35 per binade at α = 1 %) and makes an insert a few
// integer operations.

// mapping maps positive finite float64 values to bucket indexes.
type mapping struct {
	alpha     float64
	perBinade int32
	n         [8]uint64 // buckets in segment s
	off       [8]int32  // index of segment s's first bucket within its binade
}

func newMapping(alpha float64) mapping {
	m := mapping{alpha: alpha}
	gm1 := 2 * alpha / (1 - alpha) // γ − 1
	for s := range m.n {
		// Bucket j of segment s spans significands 1+s/8+j/(8n) ..
		// 1+s/8+(j+1)/(8n): a ratio of at most 1 + 1/((8+s)·n) < γ.
		m.n[s] = uint64(math.Floor(1/(float64(8+s)*gm1))) + 1
		m.off[s] = m.perBinade
		m.perBinade += int32(m.n[s])
	}
	return m
}

// index returns the bucket of x > 0 (finite, possibly subnormal).
func (m *mapping) index(x float64) int32 {
	b := math.Float64bits(x) &^ (1 << 63)
	exp := int(b >> 52)
	frac := b & (1<<52 - 1)
	var e int
	if exp == 0 { // subnormal: normalise
		p := 63 - bits.LeadingZeros64(frac)
		e = p - 1074
		frac = (frac << uint(52-p)) & (1<<52 - 1)
	} else {
		e = exp - 1023
	}
	s := frac >> 49
	j := ((frac & (1<<49 - 1)) * m.n[s]) >> 49
	return int32(e)*m.perBinade + m.off[s] + int32(j)
}

// value returns the representative of bucket i: the value with the same
// relative distance α' ≤ α to both ends of the bucket.
func (m *mapping) value(i int32) float64 {
	e := i / m.perBinade
	r := i % m.perBinade
	if r < 0 {
		e, r = e-1, r+m.perBinade
	}
	s := 7
	for m.off[s] > r {
		s--
	}
	n := float64(8 * m.n[s])
	k := float64(uint64(s)*m.n[s] + uint64(r-m.off[s]))
	lo := 1 + k/n
	hi := 1 + (k+1)/n
	return math.Ldexp(2*lo*hi/(lo+hi), int(e))
}

// minIndex and maxIndex bound the indexes of finite nonzero values; a
// decoded checkpoint must stay within them.
func (m *mapping) minIndex() int32 { return m.index(math.SmallestNonzeroFloat64) }
func (m *mapping) maxIndex() int32 { return m.index(math.MaxFloat64) }

// store counts values per bucket in a dense slice covering at most max
// buckets. When the indexes seen span more, the lowest (smallest
// magnitudes) are folded into the lowest kept bucket, top−max+1. The
// resulting state depends only on the multiset of indexes added, never on
// their order: a value at index i ends in bucket max(i, top−max+1), top
// being the highest index ever added. counts[0] and counts[len-1] are
// nonzero unless the store is empty.
type store struct {
	off    int32
	counts []uint64
}

// add counts c > 0 values at index i and reports whether any bucket was
// folded.
func (st *store) add(i int32, c uint64, max int32) (folded bool) {
	n := int32(len(st.counts))
	if n == 0 {
		st.off = i
		st.counts = append(st.counts[:0], c)
		return false
	}
	top := st.off + n - 1
	switch {
	case i >= st.off && i <= top:
		st.counts[i-st.off] += c
	case i > top:
		if lowest := i - max + 1; lowest > st.off {
			folded = true
			k := lowest - st.off // buckets below the new range
			var sum uint64
			if k >= n {
				for _, v := range st.counts {
					sum += v
				}
				st.counts = st.counts[:1]
				st.counts[0] = sum
			} else {
				for _, v := range st.counts[:k] {
					sum += v
				}
				copy(st.counts, st.counts[k:])
				st.counts = st.counts[:n-k]
				st.counts[0] += sum
			}
			st.off = lowest
		}
		st.grow(int(i - st.off + 1))
		st.counts[i-st.off] += c
	default: // i < st.off
		if lowest := top - max + 1; i < lowest {
			i, folded = lowest, true
		}
		if d := int(st.off - i); d > 0 {
			st.grow(int(n) + d)
			copy(st.counts[d:], st.counts[:n])
			clear(st.counts[:d])
			st.off = i
		}
		st.counts[i-st.off] += c
	}
	return folded
}

// merge adds the counts of o and reports whether any bucket was folded.
// The result is the same as adding o's buckets one by one.
func (st *store) merge(o *store, max int32) (folded bool) {
	n := len(o.counts)
	if n == 0 {
		return false
	}
	// Adding the extreme buckets first sets the final range; the others
	// then land inside it or fold into its lowest bucket.
	folded = st.add(o.off+int32(n-1), o.counts[n-1], max)
	if n == 1 {
		return folded
	}
	folded = st.add(o.off, o.counts[0], max) || folded
	inner := o.counts[1 : n-1]
	first := o.off + 1              // index of inner[0]
	if d := st.off - first; d > 0 { // below the range: fold
		var sum uint64
		for _, c := range inner[:min(int(d), len(inner))] {
			sum += c
		}
		if sum != 0 {
			st.counts[0] += sum
			folded = true
		}
		inner = inner[min(int(d), len(inner)):]
		first = st.off
	}
	dst := st.counts[first-st.off:]
	for j, c := range inner {
		dst[j] += c
	}
	return folded
}

// grow extends counts with zeros to length n.
func (st *store) grow(n int) {
	if n <= len(st.counts) {
		return
	}
	if n <= cap(st.counts) {
		old := len(st.counts)
		st.counts = st.counts[:n]
		clear(st.counts[old:])
		return
	}
	// Grow by a quarter, not by doubling: a window's range of values
	// settles quickly, and slack costs 8 bytes a bucket in every window.
	c := make([]uint64, n, n+n/4+4)
	copy(c, st.counts)
	st.counts = c
}

// reset empties the store for reuse. It keeps the array unless that is
// much larger than this use needed: recycled windows would otherwise all
// keep the capacity of the widest window they ever held.
func (st *store) reset() {
	if cap(st.counts) > 2*len(st.counts)+16 {
		st.counts = nil
	}
	st.counts = st.counts[:0]
	st.off = 0
}

// sketch is the quantile sketch of one window.
type sketch struct {
	pos, neg  store  // values > 0; magnitudes of values < 0
	zero      uint64 // values == 0
	collapsed bool   // some magnitudes were folded (see store)
}

func (sk *sketch) add(m *mapping, x float64, max int32) {
	switch {
	case x > 0:
		sk.collapsed = sk.pos.add(m.index(x), 1, max) || sk.collapsed
	case x < 0:
		sk.collapsed = sk.neg.add(m.index(-x), 1, max) || sk.collapsed
	default:
		sk.zero++
	}
}

func (sk *sketch) merge(o *sketch, max int32) {
	sk.zero += o.zero
	f1 := sk.pos.merge(&o.pos, max)
	f2 := sk.neg.merge(&o.neg, max)
	sk.collapsed = sk.collapsed || o.collapsed || f1 || f2
}

func (sk *sketch) reset() {
	sk.pos.reset()
	sk.neg.reset()
	sk.zero = 0
	sk.collapsed = false
}

// quantiles writes into out[i] the estimate of the qs[i]-quantile (qs
// ascending) of the n values counted, n ≥ 1, clamped to [lo, hi], the
// exact minimum and maximum. Ranks 1 and n are reported exactly.
func (sk *sketch) quantiles(m *mapping, qs []float64, out []Quantile, n uint64, lo, hi float64) {
	// Walk the buckets in value order: negatives from the largest
	// magnitude down, zero, positives up; a bucket's value is computed
	// only when a quantile's rank falls in it.
	qi := 0
	var cum uint64
	// take assigns the quantiles whose rank is within the first cum
	// values to the bucket of index i (sign: −1, 0 for the zero bucket, +1)
	// and reports whether all are assigned.
	take := func(i int32, sign int) bool {
		for qi < len(qs) {
			k := rank(qs[qi], n)
			if k > cum {
				return false
			}
			var est float64
			switch {
			case k == 1:
				est = lo
			case k == n:
				est = hi
			case sign > 0:
				est = min(max(m.value(i), lo), hi)
			case sign < 0:
				est = min(max(-m.value(i), lo), hi)
			}
			out[qi] = Quantile{Q: qs[qi], Value: est}
			qi++
		}
		return true
	}
	for j := len(sk.neg.counts) - 1; j >= 0; j-- {
		if c := sk.neg.counts[j]; c != 0 {
			cum += c
			if take(sk.neg.off+int32(j), -1) {
				return
			}
		}
	}
	if sk.zero != 0 {
		cum += sk.zero
		if take(0, 0) {
			return
		}
	}
	for j, c := range sk.pos.counts {
		if c != 0 {
			cum += c
			if take(sk.pos.off+int32(j), 1) {
				return
			}
		}
	}
	for ; qi < len(qs); qi++ { // unreachable when the counts add up to n
		out[qi] = Quantile{Q: qs[qi], Value: hi}
	}
}

// rank returns the 1-based rank ⌈q·n⌉ (at least 1, at most n) of the
// q-quantile of n ≥ 1 values, with q·n rounded to float64 first, exactly as
// Flux's quantile(method: "exact_selector") computes it, so that the batch
// layer's exact quantile picks the same element.
func rank(q float64, n uint64) uint64 {
	x := math.Ceil(q * float64(n))
	if !(x >= 1) {
		return 1
	}
	if x >= float64(n) {
		return n
	}
	return uint64(x)
}
