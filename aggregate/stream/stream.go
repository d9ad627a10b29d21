// Package stream runs the aggregator over the write-ahead log: it resumes
// from the last checkpoint, replays the log from there, follows its live
// tail, writes closed windows to the view store (and any extra sink), and
// checkpoints the aggregator's state with the LSN it covers.
//
// # Checkpoints and recovery
//
// A checkpoint is written only after every window emitted up to its LSN is
// in the view store; then the WAL cursor moves to that LSN, so retention
// keeps whatever a restart must replay. After any crash the aggregator
// starts from the checkpoint and replays the log after it: it emits exactly
// the windows the crashed run emitted after the checkpoint (the aggregator
// is a pure function of the log, processing-time decisions included, since
// ticks are log records), and the view store merges the repeats (see
// aggregate/view). No gap, no duplicate.
//
// The checkpoint file is written atomically (tmp, fsync, rename, fsync
// directory) and checksummed; a damaged one is set aside and the aggregator
// starts over from the beginning of the log.
package stream

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/edged-io/edged"
	"github.com/edged-io/edged/aggregate"
	"github.com/edged-io/edged/aggregate/view"
	"github.com/edged-io/edged/wal"
)

// Options configure a Stream.
type Options struct {
	Log       *wal.Log
	Aggregate aggregate.Options
	// Dir holds the checkpoint file. Required.
	Dir string
	// Views receives closed windows. Required.
	Views Views
	// Cursor names the stream's WAL cursor. Default "aggregator".
	Cursor string
	// CheckpointEvery is the checkpoint interval. Default 10s.
	CheckpointEvery time.Duration
	// Emit, when set, also receives every window (e.g. MQTT output).
	Emit func(aggregate.Window)
	// Estimates, when set, receives every changed row (view.RecordRow) and
	// through marks (view.RecordThrough) for the shipper: the edge
	// estimates. A through mark follows the rows it covers, and the log is
	// durable in order, so the last durable mark says which rows a restart
	// must not skip (see record).
	Estimates *wal.Log
	// Observer, when set, sees every reading, window and tick in log order
	// and has its state checkpointed with the aggregator's (the alert
	// engine).
	Observer Observer
	Logger   *slog.Logger

	// NewEngine, when set, builds the window engine instead of
	// aggregate.New (edged replay plugs in one that shards series across
	// cores). The engine's checkpoint must be the aggregator's, so that
	// either can continue from the other's.
	NewEngine func(aggregate.Options) (Engine, error)
	// NewReader, when set, opens the log reader Run consumes instead of
	// Log.NewReader (edged replay follows a log another process appends,
	// and bounds it). A Wait that returns wal.ErrClosed ends Run after a
	// final checkpoint.
	NewReader func(from uint64) Reader
}

// Views is where the stream keeps the rows of closed windows: a
// *view.Store.
type Views interface {
	Put(rows []view.Row) error
	Query(device, series string, size time.Duration, from, to int64) ([]view.Row, error)
	// Sync makes every row put so far durable.
	Sync() error
	// Damaged describes parts set aside at open: the views miss windows
	// the checkpoint covers, so the stream recomputes from the start.
	Damaged() []string
}

// Engine computes windows from log records: an *aggregate.Aggregator, or
// anything that emits exactly what one would.
type Engine interface {
	ApplyEach(rec []byte, lsn uint64, emit func(aggregate.Window), each func(*edged.Reading)) error
	MarshalBinary() ([]byte, error)
	UnmarshalBinary([]byte) error
}

// drainer is an Engine that may emit a record's windows after ApplyEach
// returns (a pipeline). Drain emits everything still pending; the stream
// calls it before it writes rows or checkpoints.
type drainer interface {
	Drain(emit func(aggregate.Window))
}

// Reader is what Run reads the log through; *wal.Reader is one.
type Reader interface {
	Next() (wal.Record, error)
	Wait(ctx context.Context) error
	Close() error
}

// Observer consumes the log beside the aggregator, in the same goroutine
// and order, and checkpoints with it. Its state must be a pure function of
// what it observed, so that replay after a crash rebuilds it.
type Observer interface {
	Reading(r *edged.Reading)
	Window(w *aggregate.Window)
	Tick(now int64, lsn uint64)
	MarshalBinary() ([]byte, error)
	// UnmarshalBinary restores a checkpointed state; an error (say, the
	// rules changed) makes the stream rebuild the observer by replaying
	// the log up to the checkpoint (see Run).
	UnmarshalBinary([]byte) error
}

// Stream is the aggregator running over the log.
type Stream struct {
	o   Options
	agg Engine
	// Rows changed since the last flush, in first-change order.
	pending map[rowKey]*view.Row
	order   []rowKey
	// estimated: pending rows already in the estimates log, unchanged
	// since (kept while the views refuse writes).
	estimated map[rowKey]bool

	applied, windows, amendments, badRecords, gaps atomic.Uint64
	checkpointLSN                                  atomic.Uint64
	// viewErrors counts failed view writes and syncs, viewDropped the
	// rows given up on; viewFailing holds checkpoints back.
	viewErrors, viewDropped atomic.Uint64
	viewFailing             bool
	viewErrLogged           time.Time

	// rebuildTo > 0: the observer's checkpointed state was unusable, so
	// Run first replays the log through rebuildTo into the observer alone.
	rebuildTo uint64
	// throughMark is when the last through mark went to Estimates;
	// lastThrough its LSN in the readings log, lastEst its own LSN.
	throughMark time.Time
	lastThrough uint64
	lastEst     uint64
	// estThrough is the last through mark Estimates held at start: rows
	// for records after it may be missing there and are written again.
	estThrough uint64
}

const checkpointName = "checkpoint"

// Version 1 held the aggregator's state only; version 2 adds the
// observer's.
var (
	checkpointMagicV1 = [8]byte{'E', 'D', 'G', 'E', 'D', 'C', 'K', 'P'}
	checkpointMagic   = [8]byte{'E', 'D', 'G', 'E', 'D', 'C', 'K', '2'}
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// New builds the aggregator and loads the checkpoint, if any.
func New(o Options) (*Stream, error) {
	if o.Log == nil || o.Views == nil || o.Dir == "" {
		return nil, errors.New("stream: Log, Views and Dir are required")
	}
	if o.Cursor == "" {
		o.Cursor = "aggregator"
	}
	if o.CheckpointEvery == 0 {
		o.CheckpointEvery = 10 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.NewEngine == nil {
		o.NewEngine = func(ao aggregate.Options) (Engine, error) { return aggregate.New(ao) }
	}
	agg, err := o.NewEngine(o.Aggregate)
	if err != nil {
		return nil, err
	}
	s := &Stream{o: o, agg: agg, pending: map[rowKey]*view.Row{}, estimated: map[rowKey]bool{}}
	if o.Estimates != nil {
		t, err := lastThroughMark(o.Estimates)
		if err != nil {
			return nil, err
		}
		s.estThrough = t
	}
	if err := wal.MkdirAll(o.Dir); err != nil {
		return nil, fmt.Errorf("stream: %w", err)
	}
	lsn, state, obs, err := readCheckpoint(filepath.Join(o.Dir, checkpointName))
	damaged := o.Views.Damaged()
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err == nil && len(damaged) > 0:
		// Part of the views was set aside: the checkpoint covers windows
		// they no longer hold. Recompute them (and the observer, which
		// must see the log once) from the start of the log; windows the
		// views still hold are skipped (record).
		o.Logger.Error("views damaged; recomputing them from the start of the log", "damage", strings.Join(damaged, "; "), "checkpoint_lsn", lsn)
	case err != nil:
		bad := filepath.Join(o.Dir, fmt.Sprintf("%s.damaged.%d", checkpointName, time.Now().UnixNano()))
		os.Rename(filepath.Join(o.Dir, checkpointName), bad)
		o.Logger.Error("aggregator checkpoint damaged; set aside, recomputing from the start of the log", "err", err, "kept", bad)
	default:
		if err := agg.UnmarshalBinary(state); err != nil {
			o.Logger.Error("aggregator checkpoint unusable (config changed?); recomputing from the start of the log", "err", err)
			if agg, err = o.NewEngine(o.Aggregate); err != nil {
				return nil, err
			}
			s.agg = agg
		} else {
			s.checkpointLSN.Store(lsn)
			if o.Observer != nil && lsn > 0 {
				if err := o.Observer.UnmarshalBinary(obs); err != nil {
					o.Logger.Warn("alert state in the checkpoint unusable; rebuilding it by replaying the log", "err", err, "through_lsn", lsn)
					s.rebuildTo = lsn
				}
			}
		}
	}
	return s, nil
}

// Stats are the stream's counters.
type Stats struct {
	Applied, Windows, Amendments, BadRecords, Gaps uint64
	CheckpointLSN                                  uint64
	// ViewErrors counts failed view writes and syncs; ViewDropped the
	// windows the views gave up on after failing too long.
	ViewErrors, ViewDropped uint64
}

// Stats returns the counters.
func (s *Stream) Stats() Stats {
	return Stats{s.applied.Load(), s.windows.Load(), s.amendments.Load(), s.badRecords.Load(), s.gaps.Load(),
		s.checkpointLSN.Load(), s.viewErrors.Load(), s.viewDropped.Load()}
}

// Run replays the log from the checkpoint and follows it until ctx ends,
// then writes a final checkpoint. A Run owns the aggregator: at most one
// at a time.
func (s *Stream) Run(ctx context.Context) error {
	if s.rebuildTo > 0 {
		if err := s.rebuildObserver(ctx); err != nil {
			return err
		}
	}
	var each func(*edged.Reading)
	if s.o.Observer != nil {
		each = s.o.Observer.Reading
	}
	from := s.checkpointLSN.Load() + 1
	var r Reader
	if s.o.NewReader != nil {
		r = s.o.NewReader(from)
	} else {
		r = s.o.Log.NewReader(from)
	}
	defer r.Close()
	s.o.Logger.Info("aggregator resuming", "from_lsn", from)
	last := s.checkpointLSN.Load()
	next := time.Now().Add(s.o.CheckpointEvery)
	for {
		rec, err := r.Next()
		var gap *wal.GapError
		switch {
		case err == nil:
			if aerr := s.agg.ApplyEach(rec.Data, rec.LSN, s.emit, each); aerr != nil {
				s.badRecords.Add(1)
				s.o.Logger.Warn("aggregator skipped a record it cannot decode", "lsn", rec.LSN, "err", aerr)
			} else if s.o.Observer != nil && edged.Kind(rec.Data) == edged.KindTick {
				now, _ := edged.DecodeTick(rec.Data) // Apply decoded it
				s.o.Observer.Tick(now, rec.LSN)
			}
			s.applied.Add(1)
			last = rec.LSN
			if len(s.order) >= 4096 {
				if err := s.flush(last); err != nil {
					return err
				}
			}
			continue
		case errors.As(err, &gap):
			s.gaps.Add(gap.Count())
			s.o.Logger.Warn("aggregator: records missing from the log", "from", gap.From, "to", gap.To)
			continue
		case !errors.Is(err, io.EOF):
			return fmt.Errorf("stream: read log: %w", err)
		}
		// At the durable end of the log.
		if err := s.flush(last); err != nil {
			return err
		}
		if time.Now().After(next) && last > s.checkpointLSN.Load() {
			if err := s.checkpoint(last); err != nil {
				return err
			}
			next = time.Now().Add(s.o.CheckpointEvery)
		}
		wctx, cancel := context.WithTimeout(ctx, time.Until(next)+time.Millisecond)
		werr := r.Wait(wctx)
		cancel()
		if ctx.Err() != nil {
			if last > s.checkpointLSN.Load() {
				return s.checkpoint(last)
			}
			return nil
		}
		if werr != nil && !errors.Is(werr, context.DeadlineExceeded) {
			if errors.Is(werr, wal.ErrClosed) && last > s.checkpointLSN.Load() {
				return s.checkpoint(last)
			}
			if errors.Is(werr, wal.ErrClosed) {
				return nil
			}
			return fmt.Errorf("stream: %w", werr)
		}
	}
}

func (s *Stream) emit(w aggregate.Window) {
	if s.o.Emit != nil {
		s.o.Emit(w)
	}
	if s.o.Observer != nil && !w.Amended {
		s.o.Observer.Window(&w)
	}
	if w.Amended {
		s.amendments.Add(1)
	} else {
		s.windows.Add(1)
	}
	if err := s.record(w); err != nil {
		s.o.Logger.Error("view: cannot record a window", "series", w.Series, "start", w.Start, "err", err)
	}
}

type rowKey struct {
	device, series, unit string
	size                 time.Duration
	start                int64
}

// appliedMark orders the events of one window: they come in LSN order, and
// one record gives a window at most an emission and then an amendment, so
// LSN + ½ for an amendment is a strict order (exact in a float64 below 2^52).
func appliedMark(w aggregate.Window) float64 {
	if w.Amended {
		return float64(w.CloseLSN) + 0.5
	}
	return float64(w.CloseLSN)
}

// record folds a window's emission or amendment into its stored row. The
// accounting of a window is the sum over its emission and amendments, which
// may come in either order; they come in LSN order, so the row's
// applied_lsn (see appliedMark) says whether an event replayed after a
// crash is already in. The view store keys rows by device and series: a
// series reported in two units shares its views (the aggregator keeps them
// apart).
func (s *Stream) record(w aggregate.Window) error {
	key := rowKey{w.Device, w.Series, w.Unit, w.Size, w.Start}
	row, ok := s.pending[key]
	if !ok {
		cur, err := s.o.Views.Query(w.Device, w.Series, w.Size, w.Start, w.Start+1)
		if err != nil {
			return err
		}
		row = &view.Row{Device: w.Device, Series: w.Series, Unit: w.Unit, Size: w.Size, Start: w.Start, End: w.End, Values: nanValues()}
		if len(cur) == 1 {
			row.Values = cur[0].Values
		}
	}
	if applied := row.Values[view.FieldIndex("applied_lsn")]; !math.IsNaN(applied) && appliedMark(w) <= applied {
		// Replayed after a crash: the view has it. The estimates log may
		// not, if the crash came before its through mark was durable:
		// write the row (as it stands) there again.
		if s.o.Estimates != nil && w.CloseLSN > s.estThrough && !ok {
			s.pending[key] = row
			s.order = append(s.order, key)
		}
		return nil
	}
	delete(s.estimated, key)
	v := row.Values
	set := func(field string, x float64) { v[view.FieldIndex(field)] = x }
	add := func(field string, n uint64) {
		i := view.FieldIndex(field)
		if math.IsNaN(v[i]) {
			v[i] = 0
		}
		v[i] += float64(n)
	}
	if !w.Amended {
		set("count", float64(w.Count))
		if w.Count > 0 {
			set("sum", w.Sum)
			set("min", w.Min)
			set("max", w.Max)
			set("mean", w.Mean)
			set("first", w.First.Value)
			set("last", w.Last.Value)
			for _, q := range w.Quantiles {
				if i := view.FieldIndex(fmt.Sprintf("p%g", q.Q*100)); i >= 0 {
					v[i] = q.Value
				}
			}
		}
		set("close_lsn", float64(w.CloseLSN))
	}
	add("late", w.Late)
	add("duplicates", w.Duplicates)
	add("conflicts", w.Conflicts)
	add("untrusted", w.Untrusted+w.Invalid)
	set("applied_lsn", appliedMark(w))
	if !ok {
		s.pending[key] = row
		s.order = append(s.order, key)
	}
	return nil
}

func nanValues() []float64 {
	v := make([]float64, len(view.Fields))
	for i := range v {
		v[i] = math.NaN()
	}
	return v
}

// flush writes the rows changed since the last flush, the aggregator
// having processed the log through lsn: first to the estimates log, with a
// through mark, durably; then to the view store. The order matters: a row
// the view store has is not emitted again after a crash (record skips it),
// so it must already be durable in the estimates log.
func (s *Stream) flush(through uint64) error {
	if d, ok := s.agg.(drainer); ok {
		d.Drain(s.emit)
	}
	mark := s.o.Estimates != nil && through > s.lastThrough &&
		(len(s.order) > 0 || time.Since(s.throughMark) >= time.Second)
	if len(s.order) == 0 && !mark {
		return nil
	}
	rows := make([]view.Row, 0, len(s.order))
	for _, k := range s.order {
		rows = append(rows, *s.pending[k])
	}
	est := rows
	if len(s.estimated) > 0 {
		// The views failed before: rows unchanged since are in the
		// estimates log already.
		est = make([]view.Row, 0, len(s.order))
		for i, k := range s.order {
			if !s.estimated[k] {
				est = append(est, rows[i])
			}
		}
	}
	if mark {
		if err := s.writeEstimates(est, through); err != nil {
			return err
		}
		for _, k := range s.order {
			s.estimated[k] = true
		}
	}
	if len(rows) == 0 {
		return nil
	}
	if err := s.o.Views.Put(rows); err != nil {
		// The rows are in the estimates log; the views are derived. Keep
		// them for the next flush and hold checkpoints back (a restart
		// then recomputes them), rather than stop the daemon — up to a
		// bound, then drop them from the views.
		s.viewErrors.Add(1)
		s.viewFailing = true
		if time.Since(s.viewErrLogged) >= time.Minute {
			s.viewErrLogged = time.Now()
			s.o.Logger.Error("view: cannot store windows; retrying, checkpoints held back", "windows", len(rows), "err", err)
		}
		if len(s.order) > maxPendingRows {
			s.viewDropped.Add(uint64(len(s.order)))
			s.o.Logger.Error("view: dropping windows the views could not store (they are in the estimates log)", "windows", len(s.order))
			clear(s.pending)
			clear(s.estimated)
			s.order = s.order[:0]
			s.viewFailing = false
		}
		return nil
	}
	if s.viewFailing {
		s.o.Logger.Info("view: storing windows again")
		s.viewFailing = false
	}
	clear(s.pending)
	clear(s.estimated)
	s.order = s.order[:0]
	return nil
}

// maxPendingRows bounds the rows kept while the views refuse writes.
const maxPendingRows = 1 << 16

// writeEstimates appends rows and a through mark to the estimates log. It
// does not wait for them to be durable (checkpoint does): the aggregator
// goroutine also evaluates alerts, and must not stall on an fsync.
func (s *Stream) writeEstimates(rows []view.Row, through uint64) error {
	var buf []byte
	for i := range rows {
		buf = view.AppendRowRecord(buf[:0], &rows[i])
		if _, err := s.o.Estimates.Append(buf); err != nil {
			return fmt.Errorf("stream: estimates log: %w", err)
		}
	}
	lsn, err := s.o.Estimates.Append(view.AppendThroughRecord(buf[:0], through))
	if err != nil {
		return fmt.Errorf("stream: estimates log: %w", err)
	}
	s.lastThrough, s.throughMark, s.lastEst = through, time.Now(), lsn
	return nil
}

// lastThroughMark finds the last through mark in the estimates log,
// reading its segments from the newest back (0 if there is none).
func lastThroughMark(l *wal.Log) (uint64, error) {
	segs := l.Stats().Segments
	for i := len(segs) - 1; i >= 0; i-- {
		var last uint64
		r := l.NewReader(segs[i].FirstLSN)
		for {
			rec, err := r.Next()
			var gap *wal.GapError
			if errors.As(err, &gap) {
				continue
			}
			if err != nil || rec.LSN > segs[i].LastLSN {
				break
			}
			if kind, _, through, err := view.DecodeRecord(rec.Data); err == nil && kind == view.RecordThrough {
				last = through
			}
		}
		r.Close()
		if last > 0 {
			return last, nil
		}
	}
	return 0, nil
}

// rebuildObserver replays the log through rebuildTo into the observer
// alone (with a scratch aggregator for its windows), because its
// checkpointed state was unusable. The views and estimates are not
// touched: they are current through the checkpoint.
func (s *Stream) rebuildObserver(ctx context.Context) error {
	scratch, err := aggregate.New(s.o.Aggregate)
	if err != nil {
		return err
	}
	obs := s.o.Observer
	r := s.o.Log.NewReader(1)
	defer r.Close()
	window := func(w aggregate.Window) {
		if !w.Amended {
			obs.Window(&w)
		}
	}
	start, n := time.Now(), 0
	for ctx.Err() == nil {
		rec, err := r.Next()
		var gap *wal.GapError
		switch {
		case errors.As(err, &gap):
			continue
		case errors.Is(err, io.EOF):
			return nil // the log ends before the checkpoint: retention removed it
		case err != nil:
			return fmt.Errorf("stream: rebuild alert state: %w", err)
		case rec.LSN > s.rebuildTo:
			s.o.Logger.Info("alert state rebuilt by replay", "records", n, "took", time.Since(start).Round(time.Millisecond))
			s.rebuildTo = 0
			return nil
		}
		if scratch.ApplyEach(rec.Data, rec.LSN, window, obs.Reading) == nil && edged.Kind(rec.Data) == edged.KindTick {
			now, _ := edged.DecodeTick(rec.Data)
			obs.Tick(now, rec.LSN)
		}
		n++
	}
	return ctx.Err()
}

// checkpoint makes the views current through lsn, writes the state, then
// moves the cursor.
func (s *Stream) checkpoint(lsn uint64) error {
	if err := s.flush(lsn); err != nil {
		return err
	}
	if s.o.Estimates != nil && s.lastEst > 0 {
		// Replay will not emit the rows up to lsn again.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := s.o.Estimates.WaitDurable(ctx, s.lastEst)
		cancel()
		if err != nil {
			return fmt.Errorf("stream: estimates log not durable: %w", err)
		}
	}
	if s.viewFailing {
		return nil // not past rows the views have not stored
	}
	if err := s.o.Views.Sync(); err != nil {
		s.viewErrors.Add(1)
		if time.Since(s.viewErrLogged) >= time.Minute {
			s.viewErrLogged = time.Now()
			s.o.Logger.Error("view: cannot make the views durable; checkpoints held back", "err", err)
		}
		return nil
	}
	state, err := s.agg.MarshalBinary()
	if err != nil {
		return fmt.Errorf("stream: checkpoint: %w", err)
	}
	var obs []byte
	if s.o.Observer != nil {
		if obs, err = s.o.Observer.MarshalBinary(); err != nil {
			return fmt.Errorf("stream: checkpoint: %w", err)
		}
	}
	if err := writeCheckpoint(filepath.Join(s.o.Dir, checkpointName), lsn, state, obs); err != nil {
		return fmt.Errorf("stream: checkpoint: %w", err)
	}
	s.checkpointLSN.Store(lsn)
	if err := s.o.Log.SetCursor(s.o.Cursor, lsn); err != nil && !errors.Is(err, wal.ErrReadOnly) {
		return fmt.Errorf("stream: %w", err)
	}
	return nil
}

// CheckpointLSN reads the LSN covered by the checkpoint in dir (the
// Options.Dir of a stream): 0 and no error if there is none.
func CheckpointLSN(dir string) (uint64, error) {
	lsn, _, _, err := readCheckpoint(filepath.Join(dir, checkpointName))
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	return lsn, err
}

// Checkpoint file (version 2): magic[8] | lsn u64 | aggregator state
// length u32 | state | observer state length u32 | observer state | CRC32C
// u32 of all before. Version 1 lacks the observer's part.
func writeCheckpoint(path string, lsn uint64, state, obs []byte) error {
	b := make([]byte, 0, 28+len(state)+len(obs))
	b = append(b, checkpointMagic[:]...)
	b = binary.LittleEndian.AppendUint64(b, lsn)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(state)))
	b = append(b, state...)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(obs)))
	b = append(b, obs...)
	b = binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
	return wal.WriteFileAtomic(wal.OSFS{}, path, b)
}

func readCheckpoint(path string) (lsn uint64, state, obs []byte, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, nil, nil, err
	}
	bad := fmt.Errorf("stream: checkpoint %s fails its checksum", path)
	if len(b) < 24 || ([8]byte(b[:8]) != checkpointMagic && [8]byte(b[:8]) != checkpointMagicV1) {
		return 0, nil, nil, fmt.Errorf("stream: %s is not a checkpoint", path)
	}
	if len(b) < 24 || crc32.Checksum(b[:len(b)-4], castagnoli) != binary.LittleEndian.Uint32(b[len(b)-4:]) {
		return 0, nil, nil, bad
	}
	body := b[16 : len(b)-4]
	part := func() []byte {
		if len(body) < 4 || uint64(binary.LittleEndian.Uint32(body)) > uint64(len(body)-4) {
			err = bad
			return nil
		}
		n := binary.LittleEndian.Uint32(body)
		p := body[4 : 4+n]
		body = body[4+n:]
		return p
	}
	state = part()
	if [8]byte(b[:8]) == checkpointMagic {
		obs = part()
	}
	if err == nil && len(body) != 0 {
		err = bad
	}
	if err != nil {
		return 0, nil, nil, err
	}
	return binary.LittleEndian.Uint64(b[8:16]), state, obs, nil
}
