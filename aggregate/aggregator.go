package aggregate

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/edged-io/edged"
)

// Errors callers branch on.
var (
	// ErrAlreadyApplied is returned by Apply for a record at or below the
	// last LSN applied: replay should start at LastLSN()+1.
	ErrAlreadyApplied = errors.New("aggregate: record already applied")
	// ErrUnknownKind is returned by Apply for a record kind the aggregator
	// does not know; nothing was changed.
	ErrUnknownKind = errors.New("aggregate: unknown record kind")
)

// Aggregator is the window engine. It is a pure function of the records fed
// to it: no goroutines, no clock, no I/O. It is not safe for concurrent
// use; one goroutine owns it.
type Aggregator struct {
	opts       Options // normalized
	sizes      []int64 // window sizes in ns, ascending
	late       int64   // allowed lateness in ns, ≥ 0
	idle       int64   // IdleAfter in ns; < 0: never
	minTime    int64
	maxFuture  int64
	maxBuckets int32
	maxPending int
	m          mapping

	decoder edged.RecordDecoder // interns names: replays allocate no strings
	series  map[string]*series  // by seriesKey
	list    []*series           // sorted by (device, series, unit)
	last    *series             // the series of the previous reading
	lastLSN uint64

	overfull []*series // series with more than maxAmends amendments during a record
	keybuf   []byte
	free     [][]*cell       // recycled windows per size index: they keep capacity fit for it
	recs     []edged.Reading // Apply's decode buffer
	hits     []*series       // the series of recs[i], when known while decoding
	knownFn  func([]byte) (string, string, string, bool)
	qslab    []Quantile // quantile slices are cut from here
}

// New returns an Aggregator with no state.
func New(o Options) (*Aggregator, error) {
	n, err := o.normalize()
	if err != nil {
		return nil, err
	}
	a := &Aggregator{}
	a.configure(n)
	return a, nil
}

func (a *Aggregator) configure(o Options) {
	a.opts = o
	a.sizes = make([]int64, len(o.Windows))
	for i, w := range o.Windows {
		a.sizes[i] = int64(w)
	}
	a.late = o.lateness()
	a.idle = int64(o.IdleAfter)
	a.minTime = max(o.MinTime.UnixNano(), hardMin)
	a.maxFuture = int64(o.MaxFuture)
	a.maxBuckets = int32(o.MaxBuckets)
	a.maxPending = o.MaxPending
	a.m = newMapping(o.RelativeAccuracy)
	a.free = make([][]*cell, len(a.sizes))
	a.series = map[string]*series{}
	a.list = nil
	a.last = nil
	a.lastLSN = 0
}

// Options returns the options in effect, defaults applied.
func (a *Aggregator) Options() Options {
	o := a.opts
	o.Windows = slices.Clone(o.Windows)
	o.Quantiles = slices.Clone(o.Quantiles)
	return o
}

// LastLSN returns the highest LSN fed so far (0 if none): a checkpoint
// taken now covers the log up to it, and replay continues after it.
func (a *Aggregator) LastLSN() uint64 { return a.lastLSN }

// Untrusted reports whether the aggregator refuses r's event time under
// the clock rule (see the package documentation). The batch layer uses it
// to leave out the same readings.
func (a *Aggregator) Untrusted(r *edged.Reading) bool { return untrusted(r, a.minTime, a.maxFuture) }

// Apply decodes one log record (readings or a tick) and feeds it, with lsn
// its LSN, which must exceed LastLSN (else ErrAlreadyApplied). A record
// that does not decode (wrapping edged.ErrBadRecord) or is of an unknown
// kind (ErrUnknownKind) changes nothing.
func (a *Aggregator) Apply(rec []byte, lsn uint64, emit func(Window)) error {
	return a.ApplyEach(rec, lsn, emit, nil)
}

// ApplyEach is Apply that also passes each reading of a readings record to
// each (which may be nil) before folding it in, so that another consumer of
// the log (the alert engine) shares the decoding. The reading is valid only
// during the call.
func (a *Aggregator) ApplyEach(rec []byte, lsn uint64, emit func(Window), each func(*edged.Reading)) error {
	if lsn <= a.lastLSN {
		return fmt.Errorf("%w: LSN %d, last applied %d", ErrAlreadyApplied, lsn, a.lastLSN)
	}
	switch k := edged.Kind(rec); k {
	case edged.KindReadings:
		if a.knownFn == nil {
			a.knownFn = a.known
		}
		a.hits = a.hits[:0]
		rs, err := a.decoder.DecodeKnown(a.recs[:0], rec, lsn, a.knownFn)
		a.recs = rs[:0]
		if err != nil {
			return fmt.Errorf("aggregate: record %d: %w", lsn, err)
		}
		for i := range rs {
			if each != nil {
				each(&rs[i])
			}
			s := a.hits[i]
			if s == nil {
				s = a.lookup(&rs[i])
			}
			a.add(s, &rs[i], lsn, emit)
		}
		a.endRecord(lsn, emit)
		a.lastLSN = lsn
		return nil
	case edged.KindTick:
		now, err := edged.DecodeTick(rec)
		if err != nil {
			return fmt.Errorf("aggregate: record %d: %w", lsn, err)
		}
		a.Tick(now, lsn, emit)
		return nil
	default:
		return fmt.Errorf("%w: record %d has kind %d", ErrUnknownKind, lsn, k)
	}
}

// Add feeds one reading, in log order; r.LSN is the LSN of its record.
// Windows it closes are passed to emit (which may be nil). Each call counts
// as a record of its own (see Apply).
func (a *Aggregator) Add(r edged.Reading, emit func(Window)) {
	a.lastLSN = max(a.lastLSN, r.LSN)
	a.add(a.lookup(&r), &r, r.LSN, emit)
	a.endRecord(r.LSN, emit)
}

// Tick feeds a logged processing-time instant now (edged.KindTick) with
// its LSN: it closes the due windows of idle series and emits the pending
// amendments, series by series in order of (device, series, unit).
func (a *Aggregator) Tick(now int64, lsn uint64, emit func(Window)) {
	a.lastLSN = max(a.lastLSN, lsn)
	for _, s := range a.list {
		if a.idle >= 0 && s.hasWM {
			if silent := satSub(now, s.lastIngest); silent >= a.idle {
				// Where the frontier would be had the series kept
				// producing readings whose event time advanced with
				// processing time, delayed by IdleAfter.
				h := satSub(satAdd(s.wm, silent-a.idle), a.late)
				end := int64(math.MinInt64)
				for k, cs := range s.cells {
					for _, c := range cs {
						if e := c.start + a.sizes[k]; e <= h && e > end {
							end = e
						}
					}
				}
				if end > s.frontier {
					a.advance(s, end, lsn, emit)
				}
			}
		}
		if len(s.amends) > 0 {
			a.flushAmends(s, lsn, emit)
		}
	}
	clear(a.overfull)
	a.overfull = a.overfull[:0]
}

// Len returns the number of series.
func (a *Aggregator) Len() int { return len(a.list) }

// Stats returns every series' state and totals, in order of (device,
// series, unit).
func (a *Aggregator) Stats() []SeriesStats {
	out := make([]SeriesStats, 0, len(a.list))
	for _, s := range a.list {
		st := SeriesStats{
			Device: s.device, Series: s.name, Unit: s.unit,
			Accepted: s.accepted, Accounting: s.acct,
			Watermark: s.wm, Frontier: s.frontier, LastIngest: s.lastIngest,
			Remembered: len(s.ids) - s.idHead, Pending: len(s.amends),
		}
		for _, cs := range s.cells {
			st.OpenWindows += len(cs)
		}
		out = append(out, st)
	}
	return out
}

// seriesKey is the map key of a series: the three names, length-prefixed.
func appendKey(dst []byte, device, name, unit string) []byte {
	for _, s := range [...]string{device, name, unit} {
		dst = binary.AppendUvarint(dst, uint64(len(s)))
		dst = append(dst, s...)
	}
	return dst
}

// known resolves a reading's encoded name triple (which is a series key,
// see appendKey) while its record is decoded, noting the series in hits.
func (a *Aggregator) known(key []byte) (device, name, unit string, ok bool) {
	s := a.series[string(key)] // no allocation for the lookup
	a.hits = append(a.hits, s)
	if s == nil {
		return "", "", "", false
	}
	return s.device, s.name, s.unit, true
}

func (a *Aggregator) lookup(r *edged.Reading) *series {
	if s := a.last; s != nil && s.device == r.Device && s.name == r.Series && s.unit == r.Unit {
		return s
	}
	a.keybuf = appendKey(a.keybuf[:0], r.Device, r.Series, r.Unit)
	s := a.series[string(a.keybuf)]
	if s == nil {
		s = a.newSeries(strings.Clone(r.Device), strings.Clone(r.Series), strings.Clone(r.Unit))
	}
	a.last = s
	return s
}

func compareSeries(s *series, device, name, unit string) int {
	return cmp.Or(strings.Compare(s.device, device), strings.Compare(s.name, name), strings.Compare(s.unit, unit))
}

func (a *Aggregator) newSeries(device, name, unit string) *series {
	s := &series{device: device, name: name, unit: unit, frontier: math.MinInt64, cells: make([][]*cell, len(a.sizes))}
	a.series[string(appendKey(nil, device, name, unit))] = s
	i, _ := slices.BinarySearchFunc(a.list, s, func(x, y *series) int { return compareSeries(x, y.device, y.name, y.unit) })
	a.list = slices.Insert(a.list, i, s)
	return s
}

// add processes one reading of series s.
func (a *Aggregator) add(s *series, r *edged.Reading, lsn uint64, emit func(Window)) {
	t, v := r.Time, r.Value
	switch {
	case invalid(v):
		a.refuse(s, t, reasonInvalid, lsn, emit)
		return
	case untrusted(r, a.minTime, a.maxFuture):
		a.refuse(s, t, reasonUntrusted, lsn, emit)
		return
	case !s.hasWM:
		s.ids = append(s.ids, ident{t, v})
		s.lastIngest = r.Ingest
	case t < s.frontier:
		a.refuse(s, t, reasonLate, lsn, emit)
		return
	case t > s.wm:
		s.ids = append(s.ids, ident{t, v})
		s.lastIngest = max(s.lastIngest, r.Ingest)
	default:
		i, found := s.findID(t)
		if found {
			why := reasonDuplicate
			if s.ids[i].v != v {
				why = reasonConflict
			}
			a.refuse(s, t, why, lsn, emit)
			return
		}
		s.ids = slices.Insert(s.ids, i, ident{t, v})
		s.lastIngest = max(s.lastIngest, r.Ingest)
	}
	a.cellFor(s, t).add(&a.m, t, v, a.maxBuckets)
	s.accepted++
	f := s.frontier
	if !s.hasWM || t > s.wm {
		s.hasWM, s.wm = true, t
		f = max(f, t-a.late)
	}
	if len(s.ids)-s.idHead > a.maxPending {
		f = max(f, s.ids[s.idHead].t+1)
	}
	if f > s.frontier {
		a.advance(s, f, lsn, emit)
	}
}

// refuse counts a reading of s at event time t that is not folded in: in
// the series' totals, and on the window of each size that holds t: in the
// window itself while it is open, else in an amendment.
func (a *Aggregator) refuse(s *series, t int64, why reason, lsn uint64, emit func(Window)) {
	s.acct.count(why)
	if t < hardMin || t >= hardMax {
		return
	}
	if c := s.find(0, align(t, a.sizes[0])); c != nil {
		c.acct.count(why) // merged into the larger windows when it closes
		return
	}
	for k, size := range a.sizes {
		start := align(t, size)
		if k > 0 {
			if c := s.find(k, start); c != nil {
				c.acct.count(why)
				continue
			}
		}
		a.amend(s, k, start, why)
	}
}

// maxAmends bounds the amendments a series holds between records; a
// record that leaves more emits them at its end.
const maxAmends = 64

func (a *Aggregator) amend(s *series, k int, start int64, why reason) {
	for i := range s.amends {
		if am := &s.amends[i]; int(am.size) == k && am.start == start {
			am.acct.count(why)
			return
		}
	}
	s.amends = append(s.amends, amend{size: uint8(k), start: start})
	s.amends[len(s.amends)-1].acct.count(why)
	if len(s.amends) == maxAmends+1 {
		a.overfull = append(a.overfull, s)
	}
}

// endRecord emits the amendments of the series left with more than
// maxAmends by the record of LSN lsn, in order of (device, series, unit).
func (a *Aggregator) endRecord(lsn uint64, emit func(Window)) {
	if len(a.overfull) == 0 {
		return
	}
	slices.SortFunc(a.overfull, func(x, y *series) int { return compareSeries(x, y.device, y.name, y.unit) })
	for _, s := range a.overfull {
		a.flushAmends(s, lsn, emit)
	}
	clear(a.overfull)
	a.overfull = a.overfull[:0]
}

// flushAmends emits s's amendments in order of End, then Size.
func (a *Aggregator) flushAmends(s *series, lsn uint64, emit func(Window)) {
	slices.SortFunc(s.amends, func(x, y amend) int {
		return cmp.Or(cmp.Compare(x.start+a.sizes[x.size], y.start+a.sizes[y.size]), cmp.Compare(x.size, y.size))
	})
	if emit != nil {
		for _, am := range s.amends {
			size := a.sizes[am.size]
			emit(Window{
				Device: s.device, Series: s.name, Unit: s.unit,
				Size: time.Duration(size), Start: am.start, End: am.start + size,
				Accounting: am.acct, CloseLSN: lsn, Amended: true,
			})
		}
	}
	s.amends = s.amends[:0]
}

// cellFor returns the open smallest window of s holding t (t ≥ frontier),
// creating it, and the larger windows holding it, as needed.
func (a *Aggregator) cellFor(s *series, t int64) *cell {
	start := align(t, a.sizes[0])
	cs := s.cells[0]
	if n := len(cs); n > 0 && cs[n-1].start == start {
		return cs[n-1]
	}
	var c *cell
	for k, size := range a.sizes {
		st := align(t, size)
		i, found := s.search(k, st)
		if found {
			continue
		}
		nc := a.newCell(k, st)
		s.cells[k] = slices.Insert(s.cells[k], i, nc)
		s.absorb(k, nc)
		if k == 0 {
			c = nc
		}
	}
	if c == nil {
		c = s.find(0, start)
	}
	return c
}

// advance moves s's frontier up to f: remembered readings before it are
// forgotten, windows ending at or before it are closed and emitted in order
// of End, then Size.
func (a *Aggregator) advance(s *series, f int64, lsn uint64, emit func(Window)) {
	s.frontier = f
	for s.idHead < len(s.ids) && s.ids[s.idHead].t < f {
		s.idHead++
	}
	switch {
	case s.idHead == len(s.ids):
		s.ids, s.idHead = s.ids[:0], 0
	case s.idHead >= 8 && 2*s.idHead >= len(s.ids):
		n := copy(s.ids, s.ids[s.idHead:])
		s.ids, s.idHead = s.ids[:n], 0
	}
	for {
		end := int64(math.MaxInt64)
		for k, cs := range s.cells {
			if len(cs) > 0 {
				end = min(end, cs[0].start+a.sizes[k])
			}
		}
		if end > f {
			return
		}
		for k, cs := range s.cells {
			if len(cs) == 0 || cs[0].start+a.sizes[k] != end {
				continue
			}
			c := cs[0]
			copy(cs, cs[1:])
			cs[len(cs)-1] = nil
			s.cells[k] = cs[:len(cs)-1]
			if k == 0 {
				for j := 1; j < len(a.sizes); j++ {
					if p := s.find(j, align(c.start, a.sizes[j])); p != nil {
						p.merge(c, a.maxBuckets)
					}
				}
			}
			if emit != nil {
				emit(a.window(s, k, c, lsn))
			}
			a.recycle(k, c)
		}
	}
}

// window builds the emission of cell c of size index k.
func (a *Aggregator) window(s *series, k int, c *cell, lsn uint64) Window {
	size := a.sizes[k]
	w := Window{
		Device: s.device, Series: s.name, Unit: s.unit,
		Size: time.Duration(size), Start: c.start, End: c.start + size,
		Count: c.count, Accounting: c.acct, CloseLSN: lsn,
	}
	w.Accounting.merge(&c.absorbed)
	if c.count == 0 {
		return w
	}
	w.Sum = c.sum.float()
	w.Min, w.Max = c.min, c.max
	w.Mean = w.Sum / float64(c.count)
	w.First, w.Last = c.first, c.last
	w.Collapsed = c.sk.collapsed
	if nq := len(a.opts.Quantiles); nq > 0 {
		if len(a.qslab) < nq {
			a.qslab = make([]Quantile, 64*nq)
		}
		w.Quantiles = a.qslab[:nq:nq]
		a.qslab = a.qslab[nq:]
		c.sk.quantiles(&a.m, a.opts.Quantiles, w.Quantiles, c.count, c.min, c.max)
	}
	return w
}

func (a *Aggregator) newCell(k int, start int64) *cell {
	if n := len(a.free[k]); n > 0 {
		c := a.free[k][n-1]
		a.free[k][n-1] = nil
		a.free[k] = a.free[k][:n-1]
		c.start = start
		return c
	}
	return &cell{start: start}
}

func (a *Aggregator) recycle(k int, c *cell) {
	c.reset()
	a.free[k] = append(a.free[k], c)
}
