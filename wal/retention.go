package wal

import (
	"fmt"
	"maps"
	"slices"
)

// RetentionReport says what ApplyRetention removed.
type RetentionReport struct {
	Segments int
	Bytes    int64
	Records  uint64
	// Unconsumed counts, per cursor, removed records that cursor had not
	// yet consumed: data the quota forced out.
	Unconsumed map[string]uint64
}

// ApplyRetention removes closed segments, oldest first: those older than
// RetentionAge that every cursor has consumed, then as many as needed to
// bring the log under RetentionBytes, consumed or not. Because cursors only
// move forward, the oldest segments are the consumed ones, so consumed data
// always goes first. Forced drops are counted exactly per cursor and
// reported. Run calls it periodically.
func (l *Log) ApplyRetention() (RetentionReport, error) {
	rep := RetentionReport{Unconsumed: map[string]uint64{}}
	if l.readOnly || (l.opts.RetentionAge == 0 && l.opts.RetentionBytes == 0) {
		return rep, nil
	}
	l.repairMu.Lock()
	defer l.repairMu.Unlock()
	now := l.opts.Now()
	for {
		l.mu.Lock()
		if len(l.segs) < 2 {
			l.mu.Unlock()
			break
		}
		var total int64
		for _, s := range l.segs {
			total += s.size
		}
		seg, next := l.segs[0], l.segs[1]
		last := seg.last
		if last == 0 {
			last = next.first - 1
		}
		consumed := true
		for _, c := range l.cursors {
			consumed = consumed && c >= last
		}
		aged := l.opts.RetentionAge > 0 && now.Sub(seg.modTime) > l.opts.RetentionAge && consumed
		over := l.opts.RetentionBytes > 0 && total > l.opts.RetentionBytes
		cursors := maps.Clone(l.cursors)
		l.mu.Unlock()
		if !aged && !over {
			break
		}
		if err := l.fs.Remove(seg.path); err != nil {
			return rep, fmt.Errorf("wal: retention: %w", err)
		}
		l.mu.Lock()
		if i := slices.Index(l.segs, seg); i >= 0 {
			l.segs = slices.Delete(l.segs, i, i+1)
		}
		records := last - seg.first + 1
		rep.Segments++
		rep.Bytes += seg.size
		rep.Records += records
		l.counters.RetainedDrops++
		for name, c := range cursors {
			if c < last {
				n := last - max(c, seg.first-1)
				rep.Unconsumed[name] += n
				l.counters.Dropped[name] += n
			}
		}
		l.mu.Unlock()
	}
	if rep.Segments == 0 {
		return rep, nil
	}
	if err := l.fs.SyncDir(l.dir); err != nil {
		return rep, fmt.Errorf("wal: retention: %w", err)
	}
	l.logger.Info("wal: retention removed segments", "segments", rep.Segments, "bytes", rep.Bytes, "records", rep.Records)
	for name, n := range rep.Unconsumed {
		l.logger.Warn("wal: size quota forced out records a consumer had not read", "cursor", name, "records", n,
			"quota_bytes", l.opts.RetentionBytes)
	}
	return rep, nil
}
