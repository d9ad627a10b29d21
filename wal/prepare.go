package wal

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
)

// Under SyncAlways the next segment is prepared ahead, zero-filled to
// SegmentSize and fsynced, by a goroutine of Run. Overwriting allocated
// blocks lets fdatasync skip the file-size and extent updates that every
// fsync of an appending file pays for: on ext4 it is the difference between
// a journal commit per batch and a data flush per batch.

const preparedName = "next-segment.tmp" // removed by Open if left over

func (l *Log) preallocating() bool { return l.opts.Sync == SyncAlways }

// prepareLoop zero-fills a spare segment file whenever asked.
func (l *Log) prepareLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-l.needPrepared:
		}
		if err := l.prepare(); err != nil {
			// Not fatal: rotation falls back to creating a plain segment.
			l.logger.Warn("wal: cannot preallocate the next segment", "err", err)
			continue
		}
		l.mu.Lock()
		l.prepared = true
		l.mu.Unlock()
	}
}

func (l *Log) prepare() error {
	path := filepath.Join(l.dir, preparedName)
	f, err := l.fs.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o640)
	if err != nil {
		return err
	}
	// Zero-fill in 1 MiB steps, each made durable before the next: one big
	// flush at the end would hold the disk for the whole segment while the
	// committer's small fsyncs wait behind it.
	zeros := make([]byte, 1<<20)
	for off := int64(0); off < l.opts.SegmentSize; off += int64(len(zeros)) {
		if _, err := f.Write(zeros[:min(int64(len(zeros)), l.opts.SegmentSize-off)]); err != nil {
			f.Close()
			return err
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return err
		}
	}
	return f.Close()
}

// usePrepared turns the prepared spare, if there is one, into the segment
// starting at first. It returns a nil File when there is no spare.
func (l *Log) usePrepared(first uint64) (*segment, File, error) {
	l.mu.Lock()
	ready := l.prepared
	l.prepared = false
	l.mu.Unlock()
	if !ready {
		return nil, nil, nil
	}
	defer func() {
		select {
		case l.needPrepared <- struct{}{}:
		default:
		}
	}()
	path := filepath.Join(l.dir, segmentName(first))
	// Header first, under the spare's name: if we crash before the rename,
	// Open removes the spare; after it, the segment is complete.
	spare := filepath.Join(l.dir, preparedName)
	f, err := l.fs.OpenFile(spare, os.O_RDWR, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("open prepared segment: %w", err)
	}
	hdr := segmentHeader{FirstLSN: first, Created: l.opts.Now().UnixNano()}.encode()
	if _, err := f.WriteAt(hdr, 0); err != nil {
		f.Close()
		return nil, nil, opError("write", spare, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, nil, opError("fsync", spare, err)
	}
	if err := l.fs.Rename(spare, path); err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("rename prepared segment: %w", err)
	}
	if err := l.fs.SyncDir(l.dir); err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("fsync directory %s: %w", l.dir, err)
	}
	return &segment{first: first, path: path, size: headerSize, durable: headerSize, modTime: l.opts.Now(), preallocated: true}, f, nil
}
