package wal

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
)

// CorruptionError reports a record that failed verification in a segment.
type CorruptionError struct {
	Segment string
	Offset  int64
	LSN     uint64 // the LSN the bad record would have had
	Reason  string
}

func (e *CorruptionError) Error() string {
	return fmt.Sprintf("wal: corrupt record %d in %s at offset %d: %s", e.LSN, e.Segment, e.Offset, e.Reason)
}

type salvageResult struct {
	runs []*segment
	lost uint64 // records skipped by length inside the segment
	end  uint64 // LSN after the last good record
}

// salvage rewrites seg keeping every record that verifies. Good records
// are kept in runs of consecutive LSNs, each run becoming a segment named
// by its first LSN; the original file is moved into quarantine/. The
// rewrite is crash-safe: runs are written and fsynced as .tmp files first,
// the original is linked into quarantine, then the runs are renamed into
// place (the first one atomically replacing the original).
func (l *Log) salvage(seg *segment) (salvageResult, error) {
	var res salvageResult
	f, err := l.fs.OpenFile(seg.path, os.O_RDONLY, 0)
	if err != nil {
		return res, fmt.Errorf("wal: salvage: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return res, fmt.Errorf("wal: salvage: %w", err)
	}
	size := fi.Size()

	type run struct {
		first uint64
		n     uint64
		buf   []byte
	}
	var runs []run
	cur := run{first: seg.first}
	sc := newScanner(f, size, headerSize, seg.first)
	var bad *CorruptionError
	for {
		p, err := sc.next()
		if err == nil {
			cur.buf = appendFrame(cur.buf, sc.lsn-1, p)
			cur.n++
			continue
		}
		var fe *frameError
		if !errors.As(err, &fe) {
			if errors.Is(err, io.EOF) {
				break
			}
			return res, err
		}
		if bad == nil {
			bad = &CorruptionError{Segment: seg.path, Offset: fe.Off, LSN: fe.LSN, Reason: fe.Fault.String()}
		}
		lsn, off := skipFrame(f, size, fe)
		if off == 0 {
			break
		}
		res.lost++
		if cur.n > 0 {
			runs = append(runs, cur)
		}
		cur = run{first: lsn}
		sc = newScanner(f, size, off, lsn)
	}
	if cur.n > 0 {
		runs = append(runs, cur)
	}
	res.end = sc.lsn

	for _, r := range runs {
		hdr := segmentHeader{FirstLSN: r.first, Created: l.opts.Now().UnixNano()}.encode()
		if err := l.writeTmp(filepath.Join(l.dir, segmentName(r.first))+".tmp", hdr, r.buf); err != nil {
			return res, fmt.Errorf("wal: salvage: %w", err)
		}
	}
	qdir := filepath.Join(l.dir, quarantineDir)
	if err := l.fs.MkdirAll(qdir, 0o750); err != nil {
		return res, fmt.Errorf("wal: salvage: %w", err)
	}
	qpath := filepath.Join(qdir, fmt.Sprintf("%s.%d.corrupt", filepath.Base(seg.path), l.opts.Now().UnixNano()))
	if err := l.fs.Link(seg.path, qpath); err != nil {
		return res, fmt.Errorf("wal: quarantine: %w", err)
	}
	replaced := false
	for _, r := range runs {
		final := filepath.Join(l.dir, segmentName(r.first))
		if err := l.fs.Rename(final+".tmp", final); err != nil {
			return res, fmt.Errorf("wal: salvage: %w", err)
		}
		replaced = replaced || r.first == seg.first
	}
	if !replaced {
		if err := l.fs.Remove(seg.path); err != nil {
			return res, fmt.Errorf("wal: salvage: %w", err)
		}
	}
	if err := l.fs.SyncDir(qdir); err != nil {
		return res, fmt.Errorf("wal: salvage: %w", err)
	}
	if err := l.fs.SyncDir(l.dir); err != nil {
		return res, fmt.Errorf("wal: salvage: %w", err)
	}

	now := l.opts.Now()
	for _, r := range runs {
		res.runs = append(res.runs, &segment{
			first: r.first, path: filepath.Join(l.dir, segmentName(r.first)),
			size: headerSize + int64(len(r.buf)), durable: headerSize + int64(len(r.buf)),
			closed: true, last: r.first + r.n - 1, modTime: now,
		})
	}
	l.mu.Lock()
	i := slices.Index(l.segs, seg)
	if i >= 0 {
		if !seg.closed && len(res.runs) > 0 {
			res.runs[len(res.runs)-1].closed = false
			res.runs[len(res.runs)-1].last = 0
		}
		l.segs = slices.Replace(l.segs, i, i+1, res.runs...)
	}
	l.counters.Quarantined++
	l.counters.LostRecords += res.lost
	l.mu.Unlock()

	attrs := []any{"segment", seg.path, "quarantined_as", qpath, "kept_runs", len(runs), "records_skipped", res.lost}
	if bad != nil {
		attrs = append(attrs, "first_bad_lsn", bad.LSN, "offset", bad.Offset, "reason", bad.Reason)
	} else {
		attrs = append(attrs, "reason", "bad segment header")
	}
	l.logger.Warn("wal: quarantined a corrupt segment and kept its good records", attrs...)
	return res, nil
}

func (l *Log) writeTmp(path string, parts ...[]byte) error {
	f, err := l.fs.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o640)
	if err != nil {
		return err
	}
	for _, p := range parts {
		if _, err := f.Write(p); err != nil {
			f.Close()
			return err
		}
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// repair salvages the closed segment starting at first, once.
func (l *Log) repair(first uint64) error {
	l.repairMu.Lock()
	defer l.repairMu.Unlock()
	l.mu.Lock()
	var seg *segment
	for _, s := range l.segs {
		if s.first == first && s.closed {
			seg = s
		}
	}
	l.mu.Unlock()
	if seg == nil {
		return nil // already repaired or removed
	}
	_, err := l.salvage(seg)
	return err
}

// VerifyReport is the outcome of Verify.
type VerifyReport struct {
	Segments int
	Records  uint64
	Bytes    int64
	Corrupt  []CorruptionError
}

// Verify checks the header and every record checksum of every segment up to
// the durable end. With repair, corrupt closed segments are salvaged and
// quarantined; without, they are only reported (for inspecting the log of a
// running daemon).
func (l *Log) Verify(ctx context.Context, repair bool) (VerifyReport, error) {
	var rep VerifyReport
	l.mu.Lock()
	segs := make([]segment, len(l.segs))
	for i, s := range l.segs {
		segs[i] = *s
	}
	l.mu.Unlock()
	for _, s := range segs {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		f, err := l.fs.OpenFile(s.path, os.O_RDONLY, 0)
		if errors.Is(err, os.ErrNotExist) {
			continue // removed by retention meanwhile
		}
		if err != nil {
			return rep, fmt.Errorf("wal: verify: %w", err)
		}
		rep.Segments++
		bad := l.verifySegment(f, &s, &rep)
		f.Close()
		if bad == nil {
			continue
		}
		rep.Corrupt = append(rep.Corrupt, *bad)
		if repair && s.closed {
			if err := l.repair(s.first); err != nil {
				return rep, err
			}
		}
	}
	return rep, nil
}

func (l *Log) verifySegment(f File, s *segment, rep *VerifyReport) *CorruptionError {
	if err := l.checkHeader(f, s); err != nil {
		return &CorruptionError{Segment: s.path, Offset: 0, LSN: s.first, Reason: err.Error()}
	}
	limit := s.durable
	sc := newScanner(f, limit, headerSize, s.first)
	for {
		_, err := sc.next()
		if err == nil {
			rep.Records++
			continue
		}
		rep.Bytes += sc.off
		var fe *frameError
		if errors.As(err, &fe) {
			return &CorruptionError{Segment: s.path, Offset: fe.Off, LSN: fe.LSN, Reason: fe.Fault.String()}
		}
		if !errors.Is(err, io.EOF) {
			return &CorruptionError{Segment: s.path, Offset: sc.off, LSN: sc.lsn, Reason: err.Error()}
		}
		return nil
	}
}
