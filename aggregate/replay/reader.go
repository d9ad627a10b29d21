package replay

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/edged-io/edged"
	"github.com/edged-io/edged/aggregate/stream"
	"github.com/edged-io/edged/wal"
)

// logReader reads the log for a replay's stream (stream.Reader). It opens
// the log read-only (wal.OpenReadOnly: no recovery, no cursor, no
// retention, nothing written), so it never disturbs a daemon appending to
// it. A read-only log is a snapshot of the segments and of the durable
// end at the time it was opened, and the appending process is another
// one, whose in-memory notifications do not reach us: to follow the tail
// the reader re-opens the log when it reaches the end, every poll
// interval, but only if a segment was added or the last one grew (one
// ReadDir and one Stat per poll when nothing happens). Re-opening scans
// the last segment (at most wal.segment_size) to find its end.
//
// It also enforces the replay's bounds: records after To (by LSN, or from
// the first whose ingest time is at or after To.Time) end the replay;
// with From.Time, records before the first whose ingest time is at or
// after it are skipped.
type logReader struct {
	opts   wal.Options
	log    *wal.Log
	r      *wal.Reader
	next   uint64 // the LSN wanted next
	follow bool
	poll   time.Duration
	// catchUp: end the replay once caught up (--activate).
	catchUp bool

	to       uint64 // inclusive; 0: none
	toTime   int64  // 0: none
	fromTime int64  // skip until a record at or after it; 0: none
	ended    bool
	// stopped: the replay was interrupted; Next reports the end at once,
	// so that the stream checkpoints where it is instead of reading on.
	stopped atomic.Bool

	seen        segmentsSeen
	lastRefresh time.Time

	pos      atomic.Uint64 // last LSN returned
	end      atomic.Uint64 // the durable end last seen
	caughtUp atomic.Bool
	gaps     atomic.Uint64 // records missing (retention, unsalvaged corruption)
	skipped  atomic.Uint64 // records skipped before From.Time
}

var _ stream.Reader = (*logReader)(nil)

// segmentsSeen is what changes when the log grows: the segment files and
// the size of the last one.
type segmentsSeen struct {
	names string
	size  int64
}

// openLogReader opens the log in opts.Dir read-only, positioned at from.
func openLogReader(opts wal.Options, from uint64) (*logReader, error) {
	lr := &logReader{opts: opts, next: max(from, 1), poll: 250 * time.Millisecond}
	seen, err := lr.look() // before opening: growth in between is seen later
	if err != nil {
		return nil, err
	}
	l, err := wal.OpenReadOnly(opts)
	if err != nil {
		return nil, err
	}
	lr.seen, lr.lastRefresh, lr.log = seen, time.Now(), l
	lr.r = l.NewReader(lr.next)
	lr.end.Store(l.DurableLSN())
	return lr, nil
}

// seek positions the reader at lsn.
func (lr *logReader) seek(lsn uint64) {
	lsn = max(lsn, 1)
	if lsn == lr.next && lr.r.Position() == lsn {
		return
	}
	lr.r.Close()
	lr.next = lsn
	lr.r = lr.log.NewReader(lsn)
}

// Next returns the next record in range, io.EOF at the end of what is
// durable (or past the bound), or a *wal.GapError.
func (lr *logReader) Next() (wal.Record, error) {
	for {
		if lr.ended || lr.stopped.Load() {
			return wal.Record{}, io.EOF
		}
		before := lr.r.Position()
		rec, err := lr.r.Next()
		var gap *wal.GapError
		var bad *wal.CorruptionError
		switch {
		case err == nil:
		case errors.As(err, &gap):
			lr.next = lr.r.Position()
			lr.gaps.Add(gap.Count())
			return rec, err
		case errors.As(err, &bad) && lr.r.Position() > before:
			// A corrupt closed segment the daemon has not salvaged yet:
			// a read-only log cannot salvage it, and skips it. What it
			// held is a gap to this replay.
			g := &wal.GapError{From: before, To: lr.r.Position() - 1}
			lr.next = lr.r.Position()
			lr.gaps.Add(g.Count())
			return wal.Record{}, fmt.Errorf("%w (%v)", g, bad)
		default:
			return rec, err
		}
		if lr.to > 0 && rec.LSN > lr.to {
			lr.ended = true
			return wal.Record{}, io.EOF
		}
		var t int64
		var timed bool
		if lr.toTime != 0 || lr.fromTime != 0 {
			t, timed = ingestTime(rec.Data)
		}
		if lr.toTime != 0 && timed && t >= lr.toTime {
			lr.ended = true
			return wal.Record{}, io.EOF
		}
		lr.next = rec.LSN + 1
		if lr.fromTime != 0 {
			if !timed || t < lr.fromTime {
				lr.skipped.Add(1)
				continue
			}
			lr.fromTime = 0
		}
		lr.pos.Store(rec.LSN)
		if rec.LSN >= lr.end.Load() {
			lr.caughtUp.Store(true) // everything durable at the last look is read
		}
		return rec, nil
	}
}

// Wait returns once more records may be available; wal.ErrClosed when the
// replay is over (the end of the log without Follow, the bound, or caught
// up with catchUp); ctx's error when it ends first. Caught up means every
// record durable at a look less than a poll interval ago is read.
func (lr *logReader) Wait(ctx context.Context) error {
	if lr.ended || lr.stopped.Load() {
		return wal.ErrClosed
	}
	if !lr.follow {
		lr.caughtUp.Store(true)
		return wal.ErrClosed
	}
	for {
		if time.Since(lr.lastRefresh) < lr.poll {
			lr.caughtUp.Store(true)
			if lr.catchUp {
				return wal.ErrClosed
			}
		}
		more, err := lr.refresh()
		if err != nil || more {
			return err
		}
		lr.caughtUp.Store(true)
		if lr.catchUp {
			return wal.ErrClosed
		}
		t := time.NewTimer(lr.poll)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// refresh re-opens the log if it grew and positions a reader there.
func (lr *logReader) refresh() (bool, error) {
	seen, err := lr.look()
	if err != nil {
		return false, err
	}
	if seen == lr.seen {
		lr.lastRefresh = time.Now()
		return false, nil
	}
	l, err := wal.OpenReadOnly(lr.opts)
	if err != nil {
		return false, fmt.Errorf("replay: re-open the log: %w", err)
	}
	lr.seen, lr.lastRefresh = seen, time.Now()
	lr.end.Store(l.DurableLSN())
	if l.DurableLSN() < lr.next {
		l.Close()
		return false, nil
	}
	lr.r.Close()
	lr.log.Close()
	lr.log, lr.r = l, l.NewReader(lr.next)
	lr.caughtUp.Store(false)
	return true, nil
}

// look lists the segments and the size of the last one.
func (lr *logReader) look() (segmentsSeen, error) {
	es, err := os.ReadDir(lr.opts.Dir)
	if err != nil {
		return segmentsSeen{}, fmt.Errorf("replay: %w", err)
	}
	var s segmentsSeen
	last := ""
	for _, e := range es {
		if n := e.Name(); filepath.Ext(n) == ".wal" && !e.IsDir() {
			s.names += n + "/"
			last = n
		}
	}
	if last != "" {
		if fi, err := os.Stat(filepath.Join(lr.opts.Dir, last)); err == nil {
			s.size = fi.Size()
		}
	}
	return s, nil
}

// Close closes the reader and the log it has open.
func (lr *logReader) Close() error {
	lr.r.Close()
	return lr.log.Close()
}

// ingestTime is a record's processing time: the ingest time of a readings
// record's first reading, a tick's instant; false for anything else.
func ingestTime(rec []byte) (int64, bool) {
	switch edged.Kind(rec) {
	case edged.KindTick:
		t, err := edged.DecodeTick(rec)
		return t, err == nil
	case edged.KindReadings:
		p := 1
		if _, k := binary.Uvarint(rec[p:]); k <= 0 {
			return 0, false
		} else {
			p += k
		}
		if p >= len(rec) {
			return 0, false
		}
		p++ // flags
		t, k := binary.Varint(rec[p:])
		if k <= 0 {
			return 0, false
		}
		d, k2 := binary.Varint(rec[p+k:])
		if k2 <= 0 {
			return 0, false
		}
		return t + d, true
	}
	return 0, false
}
