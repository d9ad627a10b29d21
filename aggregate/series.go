package aggregate

import "math"

// series is the state of one (device, series, unit).
type series struct {
	device, name, unit string

	hasWM      bool  // some reading was accepted
	wm         int64 // watermark: the latest event time accepted
	frontier   int64 // readings before it are late; windows ending at or before it are closed
	lastIngest int64 // the latest ingest time of an accepted reading

	accepted uint64
	acct     Accounting

	// ids remembers the accepted readings at or after the frontier, by
	// ascending time, from idHead on: the identities duplicates and
	// conflicts are detected against.
	ids    []ident
	idHead int

	// cells[k] holds the open windows of size index k by ascending start.
	// Invariant: every open smallest window's larger windows are open.
	cells  [][]*cell
	amends []amend // pending amendments
}

type ident struct {
	t int64
	v float64
}

// amend is the accounting waiting to be emitted as an amendment of the
// window of size index size starting at start.
type amend struct {
	size  uint8
	start int64
	acct  Accounting
}

// findID returns the position of time t among the remembered readings and
// whether it is there.
func (s *series) findID(t int64) (int, bool) {
	lo, hi := s.idHead, len(s.ids)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if s.ids[m].t < t {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo, lo < len(s.ids) && s.ids[lo].t == t
}

// search returns the position of the window of size index k starting at
// start, and whether it is open.
func (s *series) search(k int, start int64) (int, bool) {
	cs := s.cells[k]
	i := len(cs)
	for i > 0 && cs[i-1].start > start { // usually the last one or two
		i--
	}
	if i > 0 && cs[i-1].start == start {
		return i - 1, true
	}
	return i, false
}

// find returns the open window of size index k starting at start, or nil.
func (s *series) find(k int, start int64) *cell {
	if i, ok := s.search(k, start); ok {
		return s.cells[k][i]
	}
	return nil
}

// absorb moves the pending amendment of the window c of size index k, if
// any, into c: a window that opens after refusing readings reports them in
// its own emission.
func (s *series) absorb(k int, c *cell) {
	for i := range s.amends {
		if am := &s.amends[i]; int(am.size) == k && am.start == c.start {
			c.absorbed.merge(&am.acct)
			s.amends = append(s.amends[:i], s.amends[i+1:]...)
			return
		}
	}
}

// cell is the state of one open window.
type cell struct {
	start       int64
	count       uint64
	sum         exactSum
	min, max    float64
	first, last Point
	sk          sketch
	acct        Accounting // merged into the larger windows
	// absorbed is this window's own pending amendment, taken in when it
	// opened: the larger windows counted those readings themselves, so it
	// is not merged into them.
	absorbed Accounting
}

// add folds in a value v at event time t.
func (c *cell) add(m *mapping, t int64, v float64, maxBuckets int32) {
	if c.count == 0 {
		c.min, c.max = v, v
		c.first, c.last = Point{t, v}, Point{t, v}
	} else {
		c.min, c.max = minf(c.min, v), maxf(c.max, v)
		if t < c.first.Time {
			c.first = Point{t, v}
		}
		if t > c.last.Time {
			c.last = Point{t, v}
		}
	}
	c.count++
	c.sum.add(v)
	c.sk.add(m, v, maxBuckets)
}

// merge folds in o, a window of disjoint event times.
func (c *cell) merge(o *cell, maxBuckets int32) {
	if o.count > 0 {
		if c.count == 0 {
			c.min, c.max, c.first, c.last = o.min, o.max, o.first, o.last
		} else {
			c.min, c.max = minf(c.min, o.min), maxf(c.max, o.max)
			if o.first.Time < c.first.Time {
				c.first = o.first
			}
			if o.last.Time > c.last.Time {
				c.last = o.last
			}
		}
		c.count += o.count
		c.sum.merge(&o.sum)
		c.sk.merge(&o.sk, maxBuckets)
	}
	c.acct.merge(&o.acct)
}

func (c *cell) reset() {
	sk := c.sk
	sk.reset()
	*c = cell{sk: sk}
}

// minf and maxf order −0 below +0 so that the result does not depend on
// the order of the values.
func minf(a, b float64) float64 {
	if b < a || (b == a && math.Signbit(b)) {
		return b
	}
	return a
}

func maxf(a, b float64) float64 {
	if b > a || (b == a && !math.Signbit(b)) {
		return b
	}
	return a
}
