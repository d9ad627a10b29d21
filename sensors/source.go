package sensors

import (
	"context"
	"fmt"
	"sync"

	"github.com/edged-io/edged"
	"github.com/edged-io/edged/wal"
)

// Source produces readings until ctx ends. Run owns the source's
// goroutines and returns when they have stopped; it returns nil on a clean
// stop and an error only when the source cannot go on.
type Source interface {
	Run(ctx context.Context, sink Sink) error
}

// Sink is where sources put readings: one call per ingest event (one poll,
// one MQTT message), so that the readings of an event become durable
// together. Append returns the log position; WaitDurable blocks until it is
// durable (the MQTT source acknowledges the message only then).
type Sink interface {
	Append(rs []edged.Reading) (lsn uint64, err error)
	WaitDurable(ctx context.Context, lsn uint64) error
}

// LogSink appends readings to a write-ahead log, one record per call.
type LogSink struct {
	Log *wal.Log
	// Unsynced, when set, says whether a reading stamped with the ingest
	// clock (edged.TimeFromIngest) at t (ns) may carry a wrong time (the
	// local clock is not synchronised, or has stepped ahead): such readings
	// are flagged edged.ClockUnsynced.
	Unsynced func(t int64) bool
}

var _ Sink = LogSink{}

// Append encodes rs as one record and appends it.
func (s LogSink) Append(rs []edged.Reading) (uint64, error) {
	if s.Unsynced != nil {
		for i := range rs {
			if rs[i].Flags&edged.TimeFromIngest != 0 && s.Unsynced(rs[i].Time) {
				rs[i].Flags |= edged.ClockUnsynced
			}
		}
	}
	buf := recordBufs.Get().(*[]byte)
	defer recordBufs.Put(buf)
	rec, err := edged.AppendRecord((*buf)[:0], rs)
	if err != nil {
		return 0, fmt.Errorf("sensors: encode readings: %w", err)
	}
	*buf = rec
	return s.Log.Append(rec) // copies rec
}

// recordBufs holds encoding buffers for LogSink.Append (sources append
// from their own goroutines): a new record per MQTT message was a sixth of
// ingest's garbage.
var recordBufs = sync.Pool{New: func() any { return new([]byte) }}

// WaitDurable waits until the record at lsn is durable.
func (s LogSink) WaitDurable(ctx context.Context, lsn uint64) error {
	return s.Log.WaitDurable(ctx, lsn)
}
