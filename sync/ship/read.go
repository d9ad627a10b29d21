package ship

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"time"

	"github.com/edged-io/edged"
	"github.com/edged-io/edged/aggregate/view"
	"github.com/edged-io/edged/wal"
)

// await blocks until either log has a record past its reader's position,
// the deadline passes (zero: no deadline) or ctx ends.
func (s *Shipper) await(ctx context.Context, deadline time.Time) error {
	var wctx context.Context
	var cancel context.CancelFunc
	if deadline.IsZero() {
		wctx, cancel = context.WithCancel(ctx)
	} else {
		wctx, cancel = context.WithDeadline(ctx, deadline)
	}
	defer cancel()
	readers := []*wal.Reader{s.rr}
	if s.er != nil {
		readers = append(readers, s.er)
	}
	errc := make(chan error, len(readers))
	for _, r := range readers {
		go func() { errc <- r.Wait(wctx) }()
	}
	err := <-errc
	cancel()
	for range len(readers) - 1 {
		<-errc
	}
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return nil // the flush deadline
	}
	return err // nil: more records; or the log stopped or failed
}

// fill reads records into the batch until it is full or both logs are at
// their durable end, and reports whether it is full.
func (s *Shipper) fill() (bool, error) {
	defer func() {
		s.mu.Lock()
		s.pendingIngest = s.b.firstIngest
		s.mu.Unlock()
	}()
	for !s.full() {
		n, err := s.readReadings()
		if err != nil {
			return false, err
		}
		m := 0
		if s.er != nil {
			if m, err = s.readEstimates(); err != nil {
				return false, err
			}
		}
		if n == 0 && m == 0 {
			return false, nil
		}
	}
	return true, nil
}

func (s *Shipper) full() bool {
	return s.b.points() >= s.o.BatchSize || len(s.b.buf) >= s.maxBytes
}

// consumed notes that the batch covers the record at lsn of a log.
func (s *Shipper) consumed(to *uint64, lsn uint64) {
	if s.b.records == 0 {
		s.b.started = s.now()
	}
	s.b.records++
	*to = lsn
}

// readReadings reads up to readChunk points' worth of readings-log records.
func (s *Shipper) readReadings() (int, error) {
	n := 0
	for p := s.b.points(); s.b.points()-p < readChunk && !s.full(); n++ {
		rec, err := s.rr.Next()
		var gap *wal.GapError
		switch {
		case errors.Is(err, io.EOF):
			return n, nil
		case errors.As(err, &gap):
			s.logger.Warn("ship: readings were removed from the log before they were shipped; shipping a gap record",
				"from_lsn", gap.From, "to_lsn", gap.To, "records", gap.Count())
			s.enc.gap(&s.b, gap.From, gap.To, s.now().UnixNano())
			s.b.gaps++
			s.consumed(&s.b.readingsTo, gap.To)
			s.b.gapRecords += gap.Count()
		case err != nil:
			return n, fmt.Errorf("ship: reading the readings log: %w", err)
		default:
			s.readingsRecord(rec)
			s.consumed(&s.b.readingsTo, rec.LSN)
		}
	}
	return n, nil
}

func (s *Shipper) readingsRecord(rec wal.Record) {
	switch edged.Kind(rec.Data) {
	case edged.KindReadings:
	case edged.KindTick:
		return // nothing to ship
	default:
		s.badRecord("readings", rec.LSN, fmt.Errorf("unknown record kind %d", edged.Kind(rec.Data)))
		return
	}
	rs, err := s.dec.Decode(s.rs[:0], rec.Data, rec.LSN)
	s.rs = rs[:0]
	if err != nil {
		s.badRecord("readings", rec.LSN, err)
		return
	}
	var nan uint64
	for i := range rs {
		r := &rs[i]
		if math.IsNaN(r.Value) || math.IsInf(r.Value, 0) {
			nan++
			continue
		}
		untrusted, ok := s.enc.reading(&s.b, r)
		switch {
		case !ok:
		case untrusted:
			s.b.untrusted++
		default:
			s.b.readings++
		}
		s.b.noteReading(r.Ingest)
	}
	if nan > 0 {
		s.mu.Lock()
		s.st.SkippedNaN += nan
		s.mu.Unlock()
	}
}

// readEstimates reads up to readChunk points' worth of estimates-log
// records.
func (s *Shipper) readEstimates() (int, error) {
	n := 0
	for p := s.b.points(); s.b.points()-p < readChunk && !s.full(); n++ {
		rec, err := s.er.Next()
		var gap *wal.GapError
		switch {
		case errors.Is(err, io.EOF):
			return n, nil
		case errors.As(err, &gap):
			// Rows are cumulative: a later row of the same window repairs
			// the loss, but windows that closed for good in the gap are
			// missing centrally. There is no point for it in the schema.
			s.logger.Error("ship: window rows were removed from the estimates log before they were shipped",
				"from_lsn", gap.From, "to_lsn", gap.To, "records", gap.Count())
			s.mu.Lock()
			s.st.EstimatesLost += gap.Count()
			s.mu.Unlock()
			s.consumed(&s.b.estimatesTo, gap.To)
		case err != nil:
			return n, fmt.Errorf("ship: reading the estimates log: %w", err)
		default:
			kind, row, through, err := view.DecodeRecord(rec.Data)
			switch {
			case err != nil:
				s.badRecord("estimates", rec.LSN, err)
			case kind == view.RecordThrough:
				s.b.through = max(s.b.through, through)
			case s.enc.row(&s.b, &row):
				s.b.windows++
			}
			s.consumed(&s.b.estimatesTo, rec.LSN)
		}
	}
	return n, nil
}

func (s *Shipper) badRecord(log string, lsn uint64, err error) {
	s.logger.Error("ship: skipping a record that does not decode", "log", log, "lsn", lsn, "err", err)
	s.mu.Lock()
	s.st.BadRecords++
	s.mu.Unlock()
}
