package replay

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/edged-io/edged"
	"github.com/edged-io/edged/aggregate"
	"github.com/edged-io/edged/aggregate/stream"
)

// Sharded is a window engine that spreads series over several
// aggregators, one goroutine each, and emits exactly what one aggregator
// fed the same records emits, in the same order, CloseLSN included.
//
// Readings are independent per series: an aggregator's windows for a
// series depend only on that series' readings, on where records begin and
// end (amendments overflowing in a record are emitted at its end) and on
// ticks. So the caller's goroutine (the router) splits each readings
// record into one record per shard holding that shard's readings in their
// order, broadcasts ticks, and checks every record as the aggregator would
// (a record it refuses changes nothing). Series go to shards in turn as
// they first appear, so that shards get as many series each.
//
// Shards work on batches of records, up to pipelineDepth batches ahead of
// the router, which fills the next one meanwhile; a shard may run ahead of
// another. A batch's windows are merged back into the single aggregator's
// order: within a record, the windows closed by each reading in reading
// order, then the amendments a record leaves over its limit by series; at
// a tick, by series. Checkpoints are the aggregator's own (see state.go).
//
// Sharded implements stream.Engine. ApplyEach returns before the record's
// windows are emitted: they are emitted by a later ApplyEach or by Drain,
// always from the caller's goroutine. It cannot feed an observer (each
// must be nil). The shards' goroutines start with the first batch; Close
// stops them. A Sharded is not safe for concurrent use.
type Sharded struct {
	shards  []*shard
	route   map[string]int32 // series key → shard
	next    int32            // the shard the next new series goes to
	lastLSN uint64

	cur      *batch
	inflight []*batch // oldest first
	free     []*batch
	running  sync.WaitGroup // the shards' goroutines
	started  bool
	spans    []span
	merge    []tagged
	err      error
}

var _ stream.Engine = (*Sharded)(nil)

// Batches are cut at whichever comes first; at most pipelineDepth are
// with the shards.
const (
	batchReadings = 8192
	batchRecords  = 4096
	pipelineDepth = 3
)

type shard struct {
	_   [64]byte // the fields below change per reading: keep shards off each other's cache lines
	agg *aggregate.Aggregator
	in  chan *batch
	id  int
	// Set per sub-record while it is applied.
	rec   int32
	idx   []int32
	seen  int
	out   *[]tagged
	emitF func(aggregate.Window)
	eachF func(*edged.Reading)
	_     [64]byte
}

// tagged is an emitted window with what the merge orders it by.
type tagged struct {
	rec int32 // the record's index in its batch
	// key: the index, in the original record, of the reading whose
	// processing emitted the window; -1 for a record's overflowing
	// amendments and for a tick's windows (ordered by series).
	key int32
	w   aggregate.Window
}

// batch is the work of every shard for a run of records.
type batch struct {
	n     int // records
	reads int
	parts []part // one per shard
	done  sync.WaitGroup
}

type part struct {
	buf  []byte
	subs []sub
	idx  []int32 // original reading indexes, per sub
	out  []tagged
	err  error
}

type sub struct {
	off, end int
	lsn      uint64
	rec      int32
	idx      int32 // first of its reading indexes in part.idx
}

// span locates one reading in a readings record.
type span struct {
	start, end int
	shard      int32
}

// NewSharded returns an engine of n aggregators (n ≥ 2) with options o.
func NewSharded(o aggregate.Options, n int) (*Sharded, error) {
	if n < 2 {
		return nil, fmt.Errorf("replay: a sharded engine needs 2 or more shards, not %d", n)
	}
	if err := checkStateFormat(o); err != nil {
		return nil, err
	}
	e := &Sharded{route: map[string]int32{}}
	for i := range n {
		a, err := aggregate.New(o)
		if err != nil {
			return nil, err
		}
		sh := &shard{agg: a, id: i}
		sh.emitF = sh.emit
		sh.eachF = sh.each
		e.shards = append(e.shards, sh)
	}
	e.cur = e.newBatch()
	return e, nil
}

func (e *Sharded) newBatch() *batch {
	if n := len(e.free); n > 0 {
		b := e.free[n-1]
		e.free = e.free[:n-1]
		return b
	}
	return &batch{parts: make([]part, len(e.shards))}
}

// shardOf returns the shard of a series key (the length-prefixed device,
// series and unit), assigning a new series to the next shard in turn. A
// checkpoint's series are assigned as it is restored (UnmarshalBinary).
func (e *Sharded) shardOf(key []byte) int {
	if s, ok := e.route[string(key)]; ok {
		return int(s)
	}
	s := e.next
	e.route[string(key)] = s
	e.next = (s + 1) % int32(len(e.shards))
	return int(s)
}

// varintLen is the length of the varint b starts with, 0 where
// binary.Uvarint would fail (truncated, or more than 64 bits).
func varintLen(b []byte) int {
	for i := 0; i < len(b) && i < binary.MaxVarintLen64; i++ {
		if b[i] < 0x80 {
			if i == binary.MaxVarintLen64-1 && b[i] > 1 {
				return 0
			}
			return i + 1
		}
	}
	return 0
}

// ApplyEach routes one record (see Sharded). each must be nil.
func (e *Sharded) ApplyEach(rec []byte, lsn uint64, emit func(aggregate.Window), each func(*edged.Reading)) error {
	if each != nil {
		panic("replay: a sharded engine cannot feed an observer")
	}
	if e.err != nil {
		return e.err
	}
	if lsn <= e.lastLSN {
		return fmt.Errorf("%w: LSN %d, last applied %d", aggregate.ErrAlreadyApplied, lsn, e.lastLSN)
	}
	b := e.cur
	switch k := edged.Kind(rec); k {
	case edged.KindReadings:
		spans, err := e.split(rec)
		if err != nil {
			return fmt.Errorf("aggregate: record %d: %w", lsn, err)
		}
		if one := spans[0].shard; allIn(spans, one) {
			// The whole record goes to one shard (always so for records
			// of one reading): as it is.
			p := &b.parts[one]
			first := int32(len(p.idx))
			for i := range spans {
				p.idx = append(p.idx, int32(i))
			}
			off := len(p.buf)
			p.buf = append(p.buf, rec...)
			p.subs = append(p.subs, sub{off: off, end: len(p.buf), lsn: lsn, rec: int32(b.n), idx: first})
		} else {
			for s := range b.parts {
				p := &b.parts[s]
				n := 0
				for i := range spans {
					if spans[i].shard == int32(s) {
						n++
					}
				}
				if n == 0 {
					continue
				}
				off := len(p.buf)
				p.buf = append(p.buf, byte(edged.KindReadings))
				p.buf = binary.AppendUvarint(p.buf, uint64(n))
				first := int32(len(p.idx))
				for i := range spans {
					if sp := &spans[i]; sp.shard == int32(s) {
						p.buf = append(p.buf, rec[sp.start:sp.end]...)
						p.idx = append(p.idx, int32(i))
					}
				}
				p.subs = append(p.subs, sub{off: off, end: len(p.buf), lsn: lsn, rec: int32(b.n), idx: first})
			}
		}
		b.reads += len(spans)
		e.lastLSN = lsn
	case edged.KindTick:
		if _, err := edged.DecodeTick(rec); err != nil {
			return fmt.Errorf("aggregate: record %d: %w", lsn, err)
		}
		for s := range b.parts {
			p := &b.parts[s]
			off := len(p.buf)
			p.buf = append(p.buf, rec...)
			p.subs = append(p.subs, sub{off: off, end: len(p.buf), lsn: lsn, rec: int32(b.n)})
		}
		e.lastLSN = lsn
	default:
		return fmt.Errorf("%w: record %d has kind %d", aggregate.ErrUnknownKind, lsn, k)
	}
	b.n++
	if b.reads >= batchReadings || b.n >= batchRecords {
		e.dispatch(emit)
	}
	return nil
}

// split locates the readings of a readings record and their shards,
// refusing exactly what edged.DecodeRecord refuses.
func (e *Sharded) split(b []byte) ([]span, error) {
	bad := func(what string) ([]span, error) { return nil, fmt.Errorf("%w: %s", edged.ErrBadRecord, what) }
	p := 1
	n, k := binary.Uvarint(b[p:])
	if k <= 0 {
		return bad("bad varint")
	}
	p += k
	if n == 0 || n > uint64(len(b)) {
		return bad(fmt.Sprintf("count %d", n))
	}
	spans := e.spans[:0]
	for range n {
		start := p
		if p >= len(b) {
			return bad("truncated")
		}
		p++ // flags
		// time, ingest delta
		for range 2 {
			k := varintLen(b[p:])
			if k == 0 {
				return bad("bad varint")
			}
			p += k
		}
		if len(b)-p < 8 {
			return bad("truncated")
		}
		p += 8
		key := p
		// device, series, unit
		for range 3 {
			l, k := binary.Uvarint(b[p:])
			if k <= 0 {
				return bad("bad varint")
			}
			p += k
			if l > edged.MaxStringLen || l > uint64(len(b)-p) {
				return bad(fmt.Sprintf("string of %d bytes", l))
			}
			p += int(l)
		}
		spans = append(spans, span{start: start, end: p, shard: int32(e.shardOf(b[key:p]))})
	}
	e.spans = spans
	if p != len(b) {
		return bad(fmt.Sprintf("%d trailing bytes", len(b)-p))
	}
	return spans, nil
}

func allIn(spans []span, shard int32) bool {
	for i := range spans {
		if spans[i].shard != shard {
			return false
		}
	}
	return true
}

// dispatch hands the current batch to the shards, first emitting the
// oldest batch in flight if the pipeline is full.
func (e *Sharded) dispatch(emit func(aggregate.Window)) {
	b := e.cur
	if b.n == 0 {
		return
	}
	if !e.started {
		e.started = true
		for _, sh := range e.shards {
			sh.in = make(chan *batch, pipelineDepth)
			e.running.Go(func() {
				for b := range sh.in {
					sh.run(b)
				}
			})
		}
	}
	if len(e.inflight) == pipelineDepth {
		e.finish(emit)
	}
	for s, sh := range e.shards {
		if len(b.parts[s].subs) > 0 {
			b.done.Add(1)
			sh.in <- b
		}
	}
	e.inflight = append(e.inflight, b)
	e.cur = e.newBatch()
}

// finish waits for the oldest batch in flight and emits its windows.
func (e *Sharded) finish(emit func(aggregate.Window)) {
	b := e.inflight[0]
	b.done.Wait()
	copy(e.inflight, e.inflight[1:])
	e.inflight = e.inflight[:len(e.inflight)-1]
	for s := range b.parts {
		if err := b.parts[s].err; err != nil && e.err == nil {
			// The router accepted a record a shard refused: the split
			// disagrees with the decoder. Stop rather than diverge.
			e.err = fmt.Errorf("replay: shard refused a routed record: %w", err)
		}
	}
	e.emitBatch(b, emit)
	for s := range b.parts {
		p := &b.parts[s]
		clear(p.out)
		p.buf, p.subs, p.idx, p.out, p.err = p.buf[:0], p.subs[:0], p.idx[:0], p.out[:0], nil
	}
	b.n, b.reads = 0, 0
	e.free = append(e.free, b)
}

// Drain emits every window of the records applied so far.
func (e *Sharded) Drain(emit func(aggregate.Window)) {
	e.dispatch(emit)
	for len(e.inflight) > 0 {
		e.finish(emit)
	}
}

// Close stops the shards' goroutines. Windows not drained are dropped.
func (e *Sharded) Close() error {
	for _, b := range e.inflight {
		b.done.Wait()
	}
	e.inflight = nil
	if e.started {
		for _, sh := range e.shards {
			close(sh.in)
		}
		e.running.Wait()
		e.started = false
	}
	return e.err
}

// emitBatch merges the shards' windows of batch b into the single
// aggregator's order.
func (e *Sharded) emitBatch(b *batch, emit func(aggregate.Window)) {
	var pos [64]int
	if len(b.parts) > len(pos) {
		panic("replay: too many shards")
	}
	for r := int32(0); r < int32(b.n); r++ {
		m := e.merge[:0]
		from := -1 // the only shard with windows for r, if one
		for s := range b.parts {
			out := b.parts[s].out
			i := pos[s]
			for i < len(out) && out[i].rec == r {
				i++
			}
			if i > pos[s] {
				if from == -1 {
					from = s
				} else {
					from = -2
				}
				m = append(m, out[pos[s]:i]...)
			}
			pos[s] = i
		}
		if from == -1 {
			continue
		}
		if from == -2 {
			slices.SortStableFunc(m, compareTagged)
		}
		for i := range m {
			if emit != nil {
				emit(m[i].w)
			}
		}
		clear(m)
		e.merge = m[:0]
	}
}

// compareTagged orders the windows of one record: those closed by a
// reading, by reading; then the rest by series (key -1).
func compareTagged(a, b tagged) int {
	switch {
	case a.key >= 0 && b.key >= 0:
		return int(a.key - b.key)
	case a.key >= 0:
		return -1
	case b.key >= 0:
		return 1
	}
	if c := strings.Compare(a.w.Device, b.w.Device); c != 0 {
		return c
	}
	if c := strings.Compare(a.w.Series, b.w.Series); c != 0 {
		return c
	}
	return strings.Compare(a.w.Unit, b.w.Unit)
}

// run applies the shard's part of batch b.
func (sh *shard) run(b *batch) {
	p := &b.parts[sh.id]
	sh.out = &p.out
	for i := range p.subs {
		s := &p.subs[i]
		sh.rec, sh.seen = s.rec, 0
		sh.idx = p.idx[s.idx:]
		if err := sh.agg.ApplyEach(p.buf[s.off:s.end], s.lsn, sh.emitF, sh.eachF); err != nil && p.err == nil {
			p.err = err
		}
	}
	sh.out = nil
	b.done.Done()
}

func (sh *shard) each(*edged.Reading) { sh.seen++ }

func (sh *shard) emit(w aggregate.Window) {
	key := int32(-1)
	if !w.Amended && sh.seen > 0 {
		key = sh.idx[sh.seen-1]
	}
	*sh.out = append(*sh.out, tagged{rec: sh.rec, key: key, w: w})
}

// errPending reports a checkpoint asked for with windows not yet emitted.
var errPending = errors.New("replay: checkpoint with records not drained")

// MarshalBinary returns the checkpoint a single aggregator fed the same
// records would: the shards' states merged. Drain first.
func (e *Sharded) MarshalBinary() ([]byte, error) {
	if len(e.inflight) > 0 || e.cur.n > 0 {
		return nil, errPending
	}
	parts := make([][]byte, len(e.shards))
	for i, sh := range e.shards {
		b, err := sh.agg.MarshalBinary()
		if err != nil {
			return nil, err
		}
		parts[i] = b
	}
	return mergeStates(parts, e.lastLSN)
}

// UnmarshalBinary restores an aggregator's checkpoint, splitting its
// series over the shards. Call it before applying records.
func (e *Sharded) UnmarshalBinary(b []byte) error {
	if len(e.inflight) > 0 || e.cur.n > 0 {
		return errPending
	}
	route, next := e.route, e.next
	e.route, e.next = map[string]int32{}, 0
	parts, last, err := splitStates(b, len(e.shards), e.shardOf)
	if err != nil {
		e.route, e.next = route, next
		return err
	}
	for i, sh := range e.shards {
		if err := sh.agg.UnmarshalBinary(parts[i]); err != nil {
			// Some shards may be restored already: start them over so
			// that a failed restore leaves no mixture.
			for _, s := range e.shards[:i] {
				s.agg, _ = aggregate.New(s.agg.Options())
			}
			e.route, e.next = map[string]int32{}, 0
			return err
		}
	}
	e.lastLSN = last
	return nil
}

// LastLSN is the highest LSN applied.
func (e *Sharded) LastLSN() uint64 { return e.lastLSN }
