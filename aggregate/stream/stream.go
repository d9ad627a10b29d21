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
	"sync/atomic"
	"time"

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
	Views *view.Store
	// Cursor names the stream's WAL cursor. Default "aggregator".
	Cursor string
	// CheckpointEvery is the checkpoint interval. Default 10s.
	CheckpointEvery time.Duration
	// Emit, when set, also receives every window (e.g. MQTT output).
	Emit   func(aggregate.Window)
	Logger *slog.Logger
}

// Stream is the aggregator running over the log.
type Stream struct {
	o   Options
	agg *aggregate.Aggregator
	// Rows changed since the last flush, in first-change order.
	pending map[rowKey]*view.Row
	order   []rowKey

	applied, windows, amendments, badRecords, gaps atomic.Uint64
	checkpointLSN                                  atomic.Uint64
}

const checkpointName = "checkpoint"

var checkpointMagic = [8]byte{'E', 'D', 'G', 'E', 'D', 'C', 'K', 'P'}

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
	agg, err := aggregate.New(o.Aggregate)
	if err != nil {
		return nil, err
	}
	s := &Stream{o: o, agg: agg, pending: map[rowKey]*view.Row{}}
	if err := os.MkdirAll(o.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("stream: %w", err)
	}
	lsn, state, err := readCheckpoint(filepath.Join(o.Dir, checkpointName))
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		bad := filepath.Join(o.Dir, fmt.Sprintf("%s.damaged.%d", checkpointName, time.Now().UnixNano()))
		os.Rename(filepath.Join(o.Dir, checkpointName), bad)
		o.Logger.Error("aggregator checkpoint damaged; set aside, recomputing from the start of the log", "err", err, "kept", bad)
	default:
		if err := agg.UnmarshalBinary(state); err != nil {
			o.Logger.Error("aggregator checkpoint unusable (config changed?); recomputing from the start of the log", "err", err)
			if agg, err = aggregate.New(o.Aggregate); err != nil {
				return nil, err
			}
			s.agg = agg
		} else {
			s.checkpointLSN.Store(lsn)
		}
	}
	return s, nil
}

// Stats are the stream's counters.
type Stats struct {
	Applied, Windows, Amendments, BadRecords, Gaps uint64
	CheckpointLSN                                  uint64
}

// Stats returns the counters.
func (s *Stream) Stats() Stats {
	return Stats{s.applied.Load(), s.windows.Load(), s.amendments.Load(), s.badRecords.Load(), s.gaps.Load(), s.checkpointLSN.Load()}
}

// Run replays the log from the checkpoint and follows it until ctx ends,
// then writes a final checkpoint. A Run owns the aggregator: at most one
// at a time.
func (s *Stream) Run(ctx context.Context) error {
	from := s.checkpointLSN.Load() + 1
	r := s.o.Log.NewReader(from)
	defer r.Close()
	s.o.Logger.Info("aggregator resuming", "from_lsn", from)
	last := s.checkpointLSN.Load()
	next := time.Now().Add(s.o.CheckpointEvery)
	for {
		rec, err := r.Next()
		var gap *wal.GapError
		switch {
		case err == nil:
			if aerr := s.agg.Apply(rec.Data, rec.LSN, s.emit); aerr != nil {
				s.badRecords.Add(1)
				s.o.Logger.Warn("aggregator skipped a record it cannot decode", "lsn", rec.LSN, "err", aerr)
			}
			s.applied.Add(1)
			last = rec.LSN
			if len(s.order) >= 4096 {
				if err := s.flush(); err != nil {
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
		if err := s.flush(); err != nil {
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
		return nil // replayed after a crash: already in
	}
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

func (s *Stream) flush() error {
	if len(s.order) == 0 {
		return nil
	}
	rows := make([]view.Row, 0, len(s.order))
	for _, k := range s.order {
		rows = append(rows, *s.pending[k])
	}
	if err := s.o.Views.Put(rows); err != nil {
		return fmt.Errorf("stream: %w", err)
	}
	clear(s.pending)
	s.order = s.order[:0]
	return nil
}

// checkpoint makes the views current through lsn, writes the state, then
// moves the cursor.
func (s *Stream) checkpoint(lsn uint64) error {
	if err := s.flush(); err != nil {
		return err
	}
	if err := s.o.Views.Sync(); err != nil {
		return fmt.Errorf("stream: %w", err)
	}
	state, err := s.agg.MarshalBinary()
	if err != nil {
		return fmt.Errorf("stream: checkpoint: %w", err)
	}
	if err := writeCheckpoint(filepath.Join(s.o.Dir, checkpointName), lsn, state); err != nil {
		return fmt.Errorf("stream: checkpoint: %w", err)
	}
	s.checkpointLSN.Store(lsn)
	if err := s.o.Log.SetCursor(s.o.Cursor, lsn); err != nil && !errors.Is(err, wal.ErrReadOnly) {
		return fmt.Errorf("stream: %w", err)
	}
	return nil
}

// Checkpoint file: magic[8] | lsn u64 | state length u32 | state | CRC32C u32 of all before.
func writeCheckpoint(path string, lsn uint64, state []byte) error {
	b := make([]byte, 0, 24+len(state))
	b = append(b, checkpointMagic[:]...)
	b = binary.LittleEndian.AppendUint64(b, lsn)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(state)))
	b = append(b, state...)
	b = binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
	return wal.WriteFileAtomic(wal.OSFS{}, path, b)
}

func readCheckpoint(path string) (uint64, []byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, nil, err
	}
	if len(b) < 24 || [8]byte(b[:8]) != checkpointMagic {
		return 0, nil, fmt.Errorf("stream: %s is not a checkpoint", path)
	}
	n := int(binary.LittleEndian.Uint32(b[16:20]))
	if len(b) != 24+n || crc32.Checksum(b[:20+n], castagnoli) != binary.LittleEndian.Uint32(b[20+n:]) {
		return 0, nil, fmt.Errorf("stream: checkpoint %s fails its checksum", path)
	}
	return binary.LittleEndian.Uint64(b[8:16]), b[20 : 20+n], nil
}
