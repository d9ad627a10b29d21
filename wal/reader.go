package wal

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
)

// Record is one entry of the log. Data is valid until the next call to the
// Reader that returned it.
type Record struct {
	LSN  uint64
	Data []byte
}

// GapError reports records that a Reader cannot return because they are
// gone: removed by the retention quota or lost to corruption. It is not
// fatal: the next call to Next continues after the gap.
type GapError struct {
	From uint64 `json:"from"` // inclusive
	To   uint64 `json:"to"`   // inclusive
}

func (e *GapError) Error() string {
	return fmt.Sprintf("wal: records %d..%d are missing (retention quota or corruption)", e.From, e.To)
}

// Count is the number of missing records.
func (e *GapError) Count() uint64 { return e.To - e.From + 1 }

// Reader reads the log in LSN order from a starting LSN. It sees only
// durable records. At the end it returns io.EOF; Wait blocks until more
// records are durable, which makes a Reader a live tail. A Reader is not safe
// for concurrent use.
type Reader struct {
	l    *Log
	next uint64 // the LSN the caller wants next

	f     File
	first uint64 // first LSN of the open segment
	sc    *scanner
	buf   []byte // the scan buffer, kept across segments
}

// NewReader returns a Reader positioned at LSN from (0 or 1: the start).
func (l *Log) NewReader(from uint64) *Reader {
	return &Reader{l: l, next: max(from, 1)}
}

// Next returns the next record, io.EOF at the durable end, a *GapError for
// missing records (then continues after them), or another error.
func (r *Reader) Next() (Record, error) {
	for {
		if r.sc == nil {
			if err := r.open(); err != nil {
				return Record{}, err
			}
		}
		payload, err := r.sc.next()
		if err == nil {
			lsn := r.sc.lsn - 1
			if lsn < r.next {
				continue // seeking to the start position
			}
			r.next = lsn + 1
			return Record{LSN: lsn, Data: payload}, nil
		}
		limit, closed, ok := r.l.bounds(r.first)
		if !ok {
			// Removed (retention) or replaced (salvage) since we opened it:
			// what the open file holds is all we read of it.
			limit, closed = r.sc.limit, true
		}
		var fe *frameError
		switch {
		case errors.Is(err, io.EOF):
			if limit > r.sc.limit {
				r.sc.limit = limit // more became durable
				continue
			}
			if !closed {
				return Record{}, io.EOF
			}
			following, ok := r.l.segmentAfter(r.first)
			r.closeSegment()
			if !ok {
				return Record{}, io.EOF
			}
			if r.next < following {
				gap := &GapError{From: r.next, To: following - 1}
				r.next = following
				return Record{}, gap
			}
		case errors.As(err, &fe) && closed:
			first := r.first
			r.closeSegment()
			if err := r.corrupt(first, fe.Off, fe.LSN, fe.Fault.String()); err != nil {
				return Record{}, err
			}
		case errors.As(err, &fe):
			return Record{}, &CorruptionError{Segment: segmentName(r.first), Offset: fe.Off, LSN: fe.LSN, Reason: fe.Fault.String()}
		default:
			return Record{}, err
		}
	}
}

// open opens the segment holding r.next, or reports the gap before the
// first segment that follows it.
func (r *Reader) open() error {
	seg, ok := r.l.segmentFor(r.next)
	if !ok {
		return io.EOF
	}
	if seg.first > r.next {
		gap := &GapError{From: r.next, To: seg.first - 1}
		r.next = seg.first
		return gap
	}
	f, err := r.l.fs.OpenFile(seg.path, os.O_RDONLY, 0)
	if errors.Is(err, os.ErrNotExist) {
		return r.open() // removed meanwhile; look again
	}
	if err != nil {
		return fmt.Errorf("wal: reader: %w", err)
	}
	if err := r.l.checkHeader(f, &seg); err != nil && seg.closed {
		f.Close()
		if err := r.corrupt(seg.first, 0, seg.first, err.Error()); err != nil {
			return err
		}
		return r.open()
	}
	r.f, r.first = f, seg.first
	r.sc = newScanner(f, seg.durable, headerSize, seg.first)
	r.sc.buf, r.buf = r.buf[:0], nil
	return nil
}

// corrupt handles a bad record in the closed segment starting at first:
// the log salvages the segment and the reader goes on (the lost records
// surface as a GapError). A read-only log cannot salvage: the reader
// reports the corruption and skips to the next segment.
func (r *Reader) corrupt(first uint64, off int64, lsn uint64, reason string) error {
	if !r.l.readOnly {
		return r.l.repair(first)
	}
	if following, ok := r.l.segmentAfter(first); ok {
		r.next = max(r.next, following)
	}
	return &CorruptionError{Segment: segmentName(first), Offset: off, LSN: lsn, Reason: reason}
}

func (r *Reader) closeSegment() {
	if r.f != nil {
		r.f.Close()
	}
	if r.sc != nil {
		r.buf = r.sc.buf
	}
	r.f, r.sc = nil, nil
}

// Position is the LSN the next record will have.
func (r *Reader) Position() uint64 { return r.next }

// Wait blocks until a record at or past the reader's position is durable,
// the log is closed or failed, or ctx ends.
func (r *Reader) Wait(ctx context.Context) error {
	return r.l.WaitDurable(ctx, r.next)
}

// Close releases the reader's file.
func (r *Reader) Close() error {
	r.closeSegment()
	return nil
}

// segmentFor returns the segment that holds lsn, or else the first one after
// it (a gap), or false if lsn is past the last segment's start and there is
// no segment at all.
func (l *Log) segmentFor(lsn uint64) (segment, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.segs) == 0 {
		return segment{}, false
	}
	for i := len(l.segs) - 1; i >= 0; i-- {
		if l.segs[i].first <= lsn {
			return *l.segs[i], true
		}
	}
	return *l.segs[0], true
}

// segmentAfter returns the first LSN of the segment following the one that
// starts at first.
func (l *Log) segmentAfter(first uint64) (uint64, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range l.segs {
		if s.first > first {
			return s.first, true
		}
	}
	return 0, false
}

// bounds returns the readable size of the segment starting at first and
// whether it is closed.
func (l *Log) bounds(first uint64) (int64, bool, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range l.segs {
		if s.first == first {
			return s.durable, s.closed, true
		}
	}
	return 0, false, false
}
