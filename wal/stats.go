package wal

import (
	"maps"
	"time"
)

// SegmentInfo describes one segment.
type SegmentInfo struct {
	Path     string    `json:"path"`
	FirstLSN uint64    `json:"first_lsn"`
	LastLSN  uint64    `json:"last_lsn"` // FirstLSN-1 when empty
	Bytes    int64     `json:"bytes"`
	Active   bool      `json:"active"`
	ModTime  time.Time `json:"mod_time"`
}

// Stats is a snapshot of the log's state and cumulative counters.
type Stats struct {
	Dir        string            `json:"dir"`
	Sync       SyncPolicy        `json:"fsync"`
	Segments   []SegmentInfo     `json:"segments"`
	FirstLSN   uint64            `json:"first_lsn"`
	LastLSN    uint64            `json:"last_lsn"`    // last appended
	DurableLSN uint64            `json:"durable_lsn"` // last durable
	Bytes      int64             `json:"bytes"`
	Cursors    map[string]uint64 `json:"cursors"`
	// Lag is, per cursor, the durable records it has not consumed.
	Lag map[string]uint64 `json:"lag"`

	Appends         uint64            `json:"appends"`
	Batches         uint64            `json:"batches"`
	Syncs           uint64            `json:"fsyncs"`
	SyncTime        time.Duration     `json:"fsync_time_ns"`
	Rotations       uint64            `json:"rotations"`
	TornTruncations uint64            `json:"torn_truncations"`
	TornBytes       uint64            `json:"torn_bytes"`
	Quarantined     uint64            `json:"quarantined_segments"`
	LostRecords     uint64            `json:"lost_records"`
	RetainedDrops   uint64            `json:"segments_removed"`
	Dropped         map[string]uint64 `json:"dropped_unconsumed"`
	Failed          string            `json:"failed,omitempty"`
}

// Stats returns a snapshot.
func (l *Log) Stats() Stats {
	l.mu.Lock()
	defer l.mu.Unlock()
	st := Stats{
		Dir:             l.dir,
		Sync:            l.opts.Sync,
		LastLSN:         l.nextLSN - 1,
		DurableLSN:      l.durable,
		Cursors:         maps.Clone(l.cursors),
		Lag:             map[string]uint64{},
		Appends:         l.counters.Appends,
		Batches:         l.counters.Batches,
		Syncs:           l.counters.Syncs,
		SyncTime:        time.Duration(l.counters.SyncNanos),
		Rotations:       l.counters.Rotations,
		TornTruncations: l.counters.TornTruncations,
		TornBytes:       l.counters.TornBytes,
		Quarantined:     l.counters.Quarantined,
		LostRecords:     l.counters.LostRecords,
		RetainedDrops:   l.counters.RetainedDrops,
		Dropped:         maps.Clone(l.counters.Dropped),
	}
	if l.err != nil {
		st.Failed = l.err.Error()
	}
	for i, s := range l.segs {
		last := s.last
		switch {
		case !s.closed:
			last = l.durable
		case last == 0 && i+1 < len(l.segs):
			last = l.segs[i+1].first - 1
		}
		st.Segments = append(st.Segments, SegmentInfo{Path: s.path, FirstLSN: s.first, LastLSN: last,
			Bytes: s.size, Active: !s.closed, ModTime: s.modTime})
		st.Bytes += s.size
	}
	if len(l.segs) > 0 {
		st.FirstLSN = l.segs[0].first
	}
	for name, c := range l.cursors {
		if l.durable > c {
			st.Lag[name] = l.durable - c
		} else {
			st.Lag[name] = 0
		}
	}
	return st
}
