package aggregate

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math"
	"slices"
	"time"

	"github.com/edged-io/edged"
	"github.com/edged-io/edged/internal/binread"
)

// UnmarshalBinary restores a checkpoint. On an Aggregator from New the
// checkpoint must have been taken with the same options (else
// ErrCheckpointOptions); a zero Aggregator adopts the checkpoint's. Bytes
// that are not a valid checkpoint give an error wrapping ErrCheckpoint. On
// error the aggregator is unchanged.
func (a *Aggregator) UnmarshalBinary(b []byte) error {
	if len(b) < len(checkpointMagic)+1+4 || string(b[:len(checkpointMagic)]) != checkpointMagic {
		return fmt.Errorf("%w: no magic", ErrCheckpoint)
	}
	body, sum := b[:len(b)-4], binary.LittleEndian.Uint32(b[len(b)-4:])
	if crc32.Checksum(body, castagnoli) != sum {
		return fmt.Errorf("%w: checksum mismatch", ErrCheckpoint)
	}
	if v := body[len(checkpointMagic)]; v != checkpointVersion {
		return fmt.Errorf("%w: version %d (this build reads %d)", ErrCheckpoint, v, checkpointVersion)
	}
	d := reader{binread.New(body[len(checkpointMagic)+1:], ErrCheckpoint)}
	o := d.options()
	if d.Err() != nil {
		return d.Err()
	}
	n, err := o.normalize()
	if err != nil || !optionsEqual(&n, &o) {
		return fmt.Errorf("%w: options: %v", ErrCheckpoint, cmpOr(err, "not canonical"))
	}
	if a.sizes != nil && !optionsEqual(&a.opts, &o) {
		return ErrCheckpointOptions
	}
	t := &Aggregator{}
	t.configure(o)
	t.lastLSN = d.uvarint()
	ns := d.count(1 << 24)
	for i := 0; i < ns && d.Err() == nil; i++ {
		s := t.readSeries(d)
		if d.Err() != nil {
			break
		}
		if i > 0 && compareSeries(t.list[i-1], s.device, s.name, s.unit) >= 0 {
			d.fail("series %q/%q/%q out of order", s.device, s.name, s.unit)
			break
		}
		t.list = append(t.list, s)
		t.series[string(appendKey(nil, s.device, s.name, s.unit))] = s
	}
	if err := d.End(); err != nil {
		return err
	}
	if len(a.free) == len(t.free) {
		t.free = a.free
	}
	t.keybuf, t.recs, t.qslab, t.overfull = a.keybuf, a.recs, a.qslab, a.overfull[:0]
	*a = *t
	return nil
}

func cmpOr(err error, s string) any {
	if err != nil {
		return err
	}
	return s
}

func optionsEqual(x, y *Options) bool {
	return slices.Equal(x.Windows, y.Windows) && x.Lateness == y.Lateness &&
		x.IdleAfter == y.IdleAfter && slices.Equal(x.Quantiles, y.Quantiles) &&
		x.RelativeAccuracy == y.RelativeAccuracy && x.MaxFuture == y.MaxFuture &&
		x.MinTime.Equal(y.MinTime) && x.MaxBuckets == y.MaxBuckets && x.MaxPending == y.MaxPending
}

// reader decodes a checkpoint on top of binread's primitives; the first
// error sticks.
type reader struct{ *binread.Reader }

func (d reader) fail(format string, args ...any) { d.Fail(format, args...) }
func (d reader) byte() byte                      { return d.Byte() }
func (d reader) uvarint() uint64                 { return d.Uvarint() }
func (d reader) varint() int64                   { return d.Varint() }
func (d reader) u64() uint64                     { return d.Uint64() }
func (d reader) string() string                  { return d.String(edged.MaxStringLen) }

func (d reader) bool() bool {
	switch d.byte() {
	case 0:
		return false
	case 1:
		return true
	}
	d.fail("bad boolean")
	return false
}

// finite reads a float64 that must be finite.
func (d reader) finite() float64 {
	f := math.Float64frombits(d.u64())
	if invalid(f) {
		d.fail("non-finite value")
	}
	return f
}

// count reads a count of at most limit items, each at least one byte.
func (d reader) count(limit int) int {
	n := d.uvarint()
	if d.Err() == nil && (n > uint64(limit) || n > uint64(len(d.B))) {
		d.fail("count %d", n)
		return 0
	}
	return int(n)
}

func (d reader) accounting() Accounting {
	return Accounting{Invalid: d.uvarint(), Untrusted: d.uvarint(), Late: d.uvarint(), Duplicates: d.uvarint(), Conflicts: d.uvarint()}
}

func (d reader) options() Options {
	var o Options
	nw := d.count(maxSizes)
	if d.Err() == nil && nw == 0 {
		d.fail("no windows")
	}
	for i := 0; i < nw && d.Err() == nil; i++ {
		w := d.uvarint()
		if w > uint64(maxWindow) {
			d.fail("window of %d ns", w)
		}
		o.Windows = append(o.Windows, time.Duration(w))
	}
	o.Lateness = time.Duration(d.varint())
	o.IdleAfter = time.Duration(d.varint())
	nq := d.count(maxQuantiles)
	o.Quantiles = make([]float64, 0, nq)
	for i := 0; i < nq && d.Err() == nil; i++ {
		o.Quantiles = append(o.Quantiles, math.Float64frombits(d.u64()))
	}
	o.RelativeAccuracy = math.Float64frombits(d.u64())
	if mf := d.uvarint(); mf > uint64(maxWindow) {
		d.fail("max future of %d ns", mf)
	} else {
		o.MaxFuture = time.Duration(mf)
	}
	o.MinTime = time.Unix(0, d.varint()).UTC()
	o.MaxBuckets = int(min(d.uvarint(), 1<<20))
	o.MaxPending = int(min(d.uvarint(), 1<<30))
	if d.Err() == nil && (o.Lateness == 0 || o.IdleAfter == 0) {
		d.fail("options not canonical")
	}
	return o
}

func (t *Aggregator) readSeries(d reader) *series {
	s := &series{cells: make([][]*cell, len(t.sizes))}
	s.device, s.name, s.unit = d.string(), d.string(), d.string()
	s.hasWM = d.bool()
	s.wm, s.frontier, s.lastIngest = d.varint(), d.varint(), d.varint()
	s.accepted = d.uvarint()
	s.acct = d.accounting()
	if d.Err() != nil {
		return s
	}
	if s.hasWM {
		if s.wm < hardMin || s.wm >= hardMax || s.frontier < hardMin-int64(24*time.Hour) || s.frontier > hardMax+int64(maxWindow) {
			d.fail("watermark %d or frontier %d out of range", s.wm, s.frontier)
		}
	} else if s.frontier != math.MinInt64 || s.wm != 0 || s.lastIngest != 0 || s.accepted != 0 {
		d.fail("series without watermark has state")
	}
	nids := d.count(t.maxPending)
	if d.Err() == nil && !s.hasWM && nids > 0 {
		d.fail("series without watermark remembers readings")
	}
	for i := 0; i < nids && d.Err() == nil; i++ {
		var id ident
		if i == 0 {
			id.t = d.varint()
		} else {
			delta := d.uvarint()
			prev := s.ids[i-1].t
			if delta == 0 || delta > uint64(s.wm-prev) {
				d.fail("remembered readings out of order")
			}
			id.t = prev + int64(delta)
		}
		id.v = d.finite()
		if id.t < s.frontier || id.t > s.wm {
			d.fail("remembered reading outside [frontier, watermark]")
		}
		s.ids = append(s.ids, id)
	}
	for k, size := range t.sizes {
		nc := d.count(1 << 20)
		if d.Err() == nil && !s.hasWM && nc > 0 {
			d.fail("series without watermark has windows")
		}
		for i := 0; i < nc && d.Err() == nil; i++ {
			c := t.readCell(d)
			if d.Err() != nil {
				break
			}
			switch {
			case align(c.start, size) != c.start || c.start > s.wm || c.start+size <= s.frontier:
				d.fail("window %d of size %v misplaced", c.start, time.Duration(size))
			case i > 0 && s.cells[k][i-1].start >= c.start:
				d.fail("windows out of order")
			case k == 0 && c.count == 0:
				d.fail("empty smallest window")
			case c.count > 0 && (c.first.Time < c.start || c.last.Time >= c.start+size || c.first.Time > c.last.Time):
				d.fail("first/last outside their window")
			}
			s.cells[k] = append(s.cells[k], c)
		}
	}
	// The invariants the engine relies on: every remembered reading's
	// smallest window is open, and so are the larger windows of every open
	// smallest one.
	for _, id := range s.ids {
		if d.Err() == nil && s.find(0, align(id.t, t.sizes[0])) == nil {
			d.fail("remembered reading without its window")
		}
	}
	for _, c := range s.cells[0] {
		for k := 1; k < len(t.sizes) && d.Err() == nil; k++ {
			if s.find(k, align(c.start, t.sizes[k])) == nil {
				d.fail("window without its larger windows")
			}
		}
	}
	na := d.count(maxAmends)
	for i := 0; i < na && d.Err() == nil; i++ {
		am := amend{size: d.byte(), start: d.varint(), acct: d.accounting()}
		if d.Err() != nil {
			break
		}
		if int(am.size) >= len(t.sizes) || am.start < hardMin-t.sizes[am.size] || am.start >= hardMax ||
			align(am.start, t.sizes[am.size]) != am.start || am.acct.Total() == 0 {
			d.fail("bad amendment")
			break
		}
		for _, o := range s.amends {
			if o.size == am.size && o.start == am.start {
				d.fail("amendment twice")
			}
		}
		s.amends = append(s.amends, am)
	}
	return s
}

func (t *Aggregator) readCell(d reader) *cell {
	c := &cell{start: d.varint(), count: d.uvarint()}
	lo, n := d.uvarint(), d.uvarint()
	if d.Err() == nil && (lo >= accWords || n > accWords-lo) {
		d.fail("sum of %d words at %d", n, lo)
	}
	for i := uint64(0); i < n && d.Err() == nil; i++ {
		c.sum[lo+i] = d.u64()
	}
	if d.Err() == nil && n > 0 && c.sum[lo+n-1]>>63 != 0 {
		for i := lo + n; i < accWords; i++ {
			c.sum[i] = math.MaxUint64
		}
	}
	c.min, c.max = d.finite(), d.finite()
	c.first = Point{d.varint(), d.finite()}
	c.last = Point{d.varint(), d.finite()}
	c.sk.zero = d.uvarint()
	total := c.sk.zero
	for _, st := range []*store{&c.sk.pos, &c.sk.neg} {
		nb := d.count(int(t.maxBuckets))
		if nb == 0 || d.Err() != nil {
			continue
		}
		off := d.varint()
		if off < int64(t.m.minIndex()) || off+int64(nb)-1 > int64(t.m.maxIndex()) {
			d.fail("bucket index %d out of range", off)
		}
		st.off = int32(off)
		for i := 0; i < nb && d.Err() == nil; i++ {
			v := d.uvarint()
			if (i == 0 || i == nb-1) && v == 0 {
				d.fail("store not trimmed")
			}
			if total+v < total {
				d.fail("count overflow")
			}
			total += v
			st.counts = append(st.counts, v)
		}
	}
	c.sk.collapsed = d.bool()
	c.acct = d.accounting()
	c.absorbed = d.accounting()
	if d.Err() != nil {
		return c
	}
	if total != c.count {
		d.fail("sketch counts %d values, window %d", total, c.count)
	}
	if c.count == 0 && (!c.sum.isZero() || c.min != 0 || c.max != 0 || c.first != (Point{}) || c.last != (Point{}) || c.sk.collapsed) {
		d.fail("empty window has values")
	}
	if c.count > 0 && !(c.min <= c.max) {
		d.fail("min above max")
	}
	return c
}
