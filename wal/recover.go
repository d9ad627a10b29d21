package wal

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

const quarantineDir = "quarantine"

// listSegments returns the segments in the directory, oldest first, closed
// ones with their sizes. The last one is returned open-ended.
func (l *Log) listSegments() ([]*segment, error) {
	names, err := l.fs.ReadDir(l.dir)
	if err != nil {
		return nil, fmt.Errorf("wal: read directory: %w", err)
	}
	var segs []*segment
	for _, name := range names {
		first, ok := parseSegmentName(name)
		if !ok {
			continue
		}
		path := filepath.Join(l.dir, name)
		fi, err := l.statFile(path)
		if err != nil {
			return nil, fmt.Errorf("wal: %w", err)
		}
		segs = append(segs, &segment{first: first, path: path, size: fi.Size(), durable: fi.Size(), closed: true, modTime: fi.ModTime()})
	}
	if len(segs) > 0 {
		segs[len(segs)-1].closed = false
	}
	return segs, nil
}

// load reads the directory without changing it (OpenReadOnly).
func (l *Log) load() error {
	segs, err := l.listSegments()
	if err != nil {
		return err
	}
	if err := l.loadCursors(); err != nil {
		return err
	}
	if len(segs) == 0 {
		return fmt.Errorf("wal: no segments in %s", l.dir)
	}
	l.segs = segs
	tail := segs[len(segs)-1]
	f, err := l.fs.OpenFile(tail.path, os.O_RDONLY, 0)
	if err != nil {
		return fmt.Errorf("wal: %w", err)
	}
	defer f.Close()
	sc := newScanner(f, tail.size, headerSize, tail.first)
	for err == nil {
		_, err = sc.next()
	}
	var fe *frameError
	if !errors.Is(err, io.EOF) && !errors.As(err, &fe) {
		return err
	}
	tail.size, tail.durable = sc.off, sc.off
	l.nextLSN = sc.lsn
	l.written, l.durable = sc.lsn-1, sc.lsn-1
	l.durableLSN.Store(sc.lsn - 1)
	return nil
}

// recover brings the directory to a consistent state for appending.
func (l *Log) recover() error {
	if err := l.fs.MkdirAll(filepath.Join(l.dir, cursorDir), 0o750); err != nil {
		return fmt.Errorf("wal: %w", err)
	}
	// Leftovers of an interrupted salvage or cursor write.
	for _, dir := range []string{l.dir, filepath.Join(l.dir, cursorDir)} {
		names, err := l.fs.ReadDir(dir)
		if err != nil {
			return fmt.Errorf("wal: read directory: %w", err)
		}
		for _, name := range names {
			if strings.HasSuffix(name, ".tmp") {
				if err := l.fs.Remove(filepath.Join(dir, name)); err != nil {
					return fmt.Errorf("wal: remove leftover: %w", err)
				}
			}
		}
	}
	segs, err := l.listSegments()
	if err != nil {
		return err
	}
	if err := l.loadCursors(); err != nil {
		return err
	}
	var maxCursor uint64
	for _, c := range l.cursors {
		maxCursor = max(maxCursor, c)
	}
	l.segs = segs
	if len(segs) == 0 {
		return l.startAt(max(1, maxCursor+1))
	}
	next, err := l.recoverTail()
	if err != nil {
		return err
	}
	if maxCursor >= next {
		// A consumer saw records that are gone (fsync=never and a power cut):
		// never hand their LSNs out again.
		l.logger.Warn("wal: a cursor is past the end of the log; records were lost before they were synced",
			"log_end", next-1, "cursor", maxCursor)
		tail := l.segs[len(l.segs)-1]
		if err := l.closeActive(tail); err != nil {
			return fmt.Errorf("wal: %w", err)
		}
		tail.closed, tail.last = true, next-1
		return l.startAt(maxCursor + 1)
	}
	l.nextLSN = next
	l.written, l.durable = next-1, next-1
	l.durableLSN.Store(next - 1)
	return nil
}

func (l *Log) startAt(first uint64) error {
	seg, f, err := l.createSegment(first)
	if err != nil {
		return fmt.Errorf("wal: %w", err)
	}
	l.segs = append(l.segs, seg)
	l.active = f
	l.nextLSN = first
	l.written, l.durable = first-1, first-1
	l.durableLSN.Store(first - 1)
	return nil
}

// recoverTail scans the last segment, truncates a torn tail or salvages
// corruption, opens it for appending and returns the next LSN.
func (l *Log) recoverTail() (uint64, error) {
	tail := l.segs[len(l.segs)-1]
	f, err := l.fs.OpenFile(tail.path, os.O_RDWR, 0)
	if err != nil {
		return 0, fmt.Errorf("wal: %w", err)
	}
	hdrOK := l.checkHeader(f, tail) == nil
	sc := newScanner(f, tail.size, headerSize, tail.first)
	for err == nil {
		_, err = sc.next()
	}
	var fe *frameError
	if !errors.Is(err, io.EOF) && !errors.As(err, &fe) {
		f.Close()
		return 0, err // an I/O error, not damage
	}
	switch {
	case hdrOK && fe == nil:
		l.active = f
		return sc.lsn, nil
	case hdrOK && fe.Fault == faultZero && l.zeroFrom(f, fe.Off, tail.size):
		// Preallocated space (see prepare): appends continue there.
		tail.size, tail.durable, tail.preallocated = fe.Off, fe.Off, true
		l.active = f
		return sc.lsn, nil
	case hdrOK && !resyncable(f, tail.size, fe):
		// A torn write: everything from the bad frame on was never
		// reported durable (see the package doc). Cut it off, keep it aside.
		if err := l.cutTail(f, tail, fe.Off); err != nil {
			f.Close()
			return 0, err
		}
		l.active = f
		return sc.lsn, nil
	}
	// A damaged header, or a bad record followed by good ones: corruption,
	// not a torn write. Salvage every good record.
	f.Close()
	res, err := l.salvage(tail)
	if err != nil {
		return 0, err
	}
	if len(res.runs) == 0 {
		// Nothing in the segment verified; salvage dropped it from l.segs.
		if err := l.startAt(tail.first); err != nil {
			return 0, err
		}
		return tail.first, nil
	}
	return l.recoverTail()
}

// zeroFrom reports whether the file holds only zero bytes from off to size.
func (l *Log) zeroFrom(f File, off, size int64) bool {
	buf := make([]byte, 1<<20)
	for off < size {
		n, err := f.ReadAt(buf[:min(int64(len(buf)), size-off)], off)
		if !allZero(buf[:n]) {
			return false
		}
		if err != nil {
			return errors.Is(err, io.EOF)
		}
		off += int64(n)
	}
	return true
}

func (l *Log) checkHeader(f File, seg *segment) error {
	b := make([]byte, headerSize)
	if _, err := f.ReadAt(b, 0); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	h, err := decodeHeader(b)
	if err != nil {
		return err
	}
	if h.FirstLSN != seg.first {
		return fmt.Errorf("%w: names LSN %d, file name says %d", errBadHeader, h.FirstLSN, seg.first)
	}
	return nil
}

// resyncable reports whether skipping the bad frame by its length field
// lands on a frame that verifies as the next record. Only then is the bad
// frame corruption rather than a torn write.
func resyncable(f File, size int64, fe *frameError) bool {
	_, skip := skipFrame(f, size, fe)
	return skip > 0
}

// skipFrame returns the LSN and offset of the frame after the bad one, when
// the bad frame's length is plausible and the next frame verifies.
func skipFrame(f File, size int64, fe *frameError) (uint64, int64) {
	var h [frameHeaderSize]byte
	if fe.Off+frameHeaderSize > size {
		return 0, 0
	}
	if _, err := f.ReadAt(h[:], fe.Off); err != nil {
		return 0, 0
	}
	n := int64(h[0]) | int64(h[1])<<8 | int64(h[2])<<16 | int64(h[3])<<24
	if n == 0 || n > MaxRecordSize {
		return 0, 0
	}
	off := fe.Off + frameHeaderSize + n
	if off >= size {
		return 0, 0
	}
	if _, err := newScanner(f, size, off, fe.LSN+1).next(); err != nil {
		return 0, 0
	}
	return fe.LSN + 1, off
}

// cutTail truncates the tail segment at off, keeping the cut bytes in the
// quarantine directory when they are not all zero.
func (l *Log) cutTail(f File, tail *segment, off int64) error {
	n := tail.size - off
	cut := make([]byte, n)
	if _, err := f.ReadAt(cut, off); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("wal: read torn tail: %w", err)
	}
	kept := ""
	for len(cut) > 0 && cut[len(cut)-1] == 0 {
		cut = cut[:len(cut)-1] // preallocated space after the torn bytes
	}
	if len(cut) > 0 {
		kept = filepath.Join(l.dir, quarantineDir, fmt.Sprintf("%s.torn-at-%d.%d", filepath.Base(tail.path), off, l.opts.Now().UnixNano()))
		if err := l.writeFileSync(kept, cut); err != nil {
			return fmt.Errorf("wal: keep torn tail aside: %w", err)
		}
	}
	if err := f.Truncate(off); err != nil {
		return fmt.Errorf("wal: truncate torn tail: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("wal: fsync after truncation: %w", err)
	}
	tail.size, tail.durable = off, off
	l.counters.TornTruncations++
	l.counters.TornBytes += uint64(n)
	l.logger.Warn("wal: truncated a torn tail (records never reported durable)",
		"segment", tail.path, "offset", off, "bytes", n, "kept", kept)
	return nil
}

// writeFileSync writes a new file durably: tmp, fsync, rename, fsync dir.
func (l *Log) writeFileSync(path string, data []byte) error {
	return WriteFileAtomic(l.fs, path, data)
}

// WriteFileAtomic replaces path with data so that a crash leaves either the
// old or the new content, never a mix: write a temporary file, fsync it,
// rename it over path, fsync the directory. The directory is created if
// needed. Other packages use it for their small state files (checkpoints).
func WriteFileAtomic(fsys FS, path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := fsys.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	tmp := path + ".tmp"
	f, err := fsys.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o640)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := fsys.Rename(tmp, path); err != nil {
		return err
	}
	return fsys.SyncDir(dir)
}
