package aggregate

import (
	"math"
	"math/bits"
)

// accWords is the size of an exactSum in 64-bit words. A finite float64 is
// an integer multiple of 2^-1074 below 2^1024, so it occupies bits 0..2097
// of a fixed-point number whose unit is 2^-1074; 64 more bits absorb the
// carries of 2^64 additions and one more holds the sign: 2163 bits.
const accWords = 34

// exactSum is the exact sum of float64 values: a two's-complement integer
// of accWords×64 bits in units of 2^-1074 (a Kulisch accumulator). Adding a
// value touches two words plus a carry that rarely ripples; the result is
// independent of the order of the additions, and two sums merge exactly.
// float rounds it once, to nearest, so Window.Sum is the correctly rounded
// sum of the window's values: more than a compensated (Kahan/Neumaier) sum
// promises, and identical under any arrival order or merge tree.
type exactSum [accWords]uint64

// add adds x, which must be finite.
func (s *exactSum) add(x float64) {
	b := math.Float64bits(x)
	exp := int(b>>52) & 0x7ff
	mant := b & (1<<52 - 1)
	if exp == 0 {
		if mant == 0 {
			return // ±0
		}
		exp = 1 // subnormal: mant × 2^-1074
	} else {
		mant |= 1 << 52
	}
	// x = ±mant × 2^(exp-1075): bit position exp-1 in units of 2^-1074.
	p := exp - 1
	w, sh := p>>6, uint(p&63)
	lo := mant << sh
	hi := mant >> (64 - sh) // 0 when sh == 0
	var c uint64
	if b>>63 == 0 {
		s[w], c = bits.Add64(s[w], lo, 0)
		s[w+1], c = bits.Add64(s[w+1], hi, c)
		for i := w + 2; c != 0 && i < accWords; i++ {
			s[i], c = bits.Add64(s[i], 0, c)
		}
		return
	}
	s[w], c = bits.Sub64(s[w], lo, 0)
	s[w+1], c = bits.Sub64(s[w+1], hi, c)
	for i := w + 2; c != 0 && i < accWords; i++ {
		s[i], c = bits.Sub64(s[i], 0, c)
	}
}

// merge adds o to s.
func (s *exactSum) merge(o *exactSum) {
	var c uint64
	for i := range s {
		s[i], c = bits.Add64(s[i], o[i], c)
	}
}

func (s *exactSum) isZero() bool { return *s == exactSum{} }

// float returns the sum rounded to the nearest float64 (ties to even);
// ±Inf if it is beyond the float64 range.
func (s *exactSum) float() float64 {
	v := *s
	neg := v[accWords-1]>>63 != 0
	if neg {
		var c uint64 = 1
		for i := range v {
			v[i], c = bits.Add64(^v[i], 0, c)
		}
	}
	top := accWords - 1
	for top >= 0 && v[top] == 0 {
		top--
	}
	if top < 0 {
		return 0
	}
	msb := top*64 + 63 - bits.LeadingZeros64(v[top]) // position of the leading bit
	var f float64
	if msb < 53 {
		f = math.Ldexp(float64(v[0]), -1074) // exact: at most 53 bits
	} else {
		sh := msb - 52 // keep bits sh..msb
		m := v.bitsFrom(sh) & (1<<53 - 1)
		round := v.bit(sh - 1)
		sticky := v.anyBelow(sh - 1)
		if round && (sticky || m&1 == 1) {
			m++
			if m == 1<<53 {
				m >>= 1
				sh++
			}
		}
		f = math.Ldexp(float64(m), sh-1074) // ±Inf on overflow
	}
	if neg {
		f = -f
	}
	return f
}

// bitsFrom returns the 64 bits of v starting at bit position p.
func (s *exactSum) bitsFrom(p int) uint64 {
	w, sh := p>>6, uint(p&63)
	r := s[w] >> sh
	if sh != 0 && w+1 < accWords {
		r |= s[w+1] << (64 - sh)
	}
	return r
}

func (s *exactSum) bit(p int) bool { return s[p>>6]>>uint(p&63)&1 == 1 }

// anyBelow reports whether any bit below position p is set.
func (s *exactSum) anyBelow(p int) bool {
	w, sh := p>>6, uint(p&63)
	for i := 0; i < w; i++ {
		if s[i] != 0 {
			return true
		}
	}
	return s[w]&(1<<sh-1) != 0
}
