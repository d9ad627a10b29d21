package wal

import (
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

const cursorDir = "cursors"

var cursorName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}$`)

// Cursor returns the named consumer's position: the last LSN it has fully
// processed (0 = nothing yet), and whether the cursor exists.
func (l *Log) Cursor(name string) (uint64, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	lsn, ok := l.cursors[name]
	return lsn, ok
}

// Cursors returns a copy of every cursor.
func (l *Log) Cursors() map[string]uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	m := make(map[string]uint64, len(l.cursors))
	for k, v := range l.cursors {
		m[k] = v
	}
	return m
}

// SetCursor records that consumer name has processed every record up to
// and including lsn. It is persisted atomically (tmp, fsync, rename, fsync
// directory) before SetCursor returns. Retention keeps what a cursor has
// not consumed, within the quota.
func (l *Log) SetCursor(name string, lsn uint64) error {
	if !cursorName.MatchString(name) {
		return fmt.Errorf("wal: bad cursor name %q (letters, digits, _ . -)", name)
	}
	if l.readOnly {
		return ErrReadOnly
	}
	l.cursorMu.Lock()
	defer l.cursorMu.Unlock()
	line := fmt.Sprintf("lsn=%d", lsn)
	content := fmt.Sprintf("%s crc=%08x\n", line, crc32.Checksum([]byte(line), castagnoli))
	if err := l.writeFileSync(filepath.Join(l.dir, cursorDir, name), []byte(content)); err != nil {
		return fmt.Errorf("wal: persist cursor %s: %w", name, err)
	}
	l.mu.Lock()
	l.cursors[name] = lsn
	l.mu.Unlock()
	return nil
}

// DeleteCursor removes a consumer, so retention no longer waits for it.
func (l *Log) DeleteCursor(name string) error {
	if !cursorName.MatchString(name) {
		return fmt.Errorf("wal: bad cursor name %q", name)
	}
	l.cursorMu.Lock()
	defer l.cursorMu.Unlock()
	dir := filepath.Join(l.dir, cursorDir)
	if err := l.fs.Remove(filepath.Join(dir, name)); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("wal: delete cursor %s: %w", name, err)
	}
	if err := l.fs.SyncDir(dir); err != nil {
		return fmt.Errorf("wal: delete cursor %s: %w", name, err)
	}
	l.mu.Lock()
	delete(l.cursors, name)
	l.mu.Unlock()
	return nil
}

// loadCursors reads the cursor files. A damaged one (which the atomic write
// rules out short of media corruption) is reported and reset to 0: its
// consumer re-reads from the start, which consumers tolerate.
func (l *Log) loadCursors() error {
	dir := filepath.Join(l.dir, cursorDir)
	names, err := l.fs.ReadDir(dir)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("wal: read cursors: %w", err)
	}
	for _, name := range names {
		if !cursorName.MatchString(name) {
			continue
		}
		lsn, err := l.readCursor(filepath.Join(dir, name))
		if err != nil {
			l.logger.Error("wal: damaged cursor reset to the start of the log", "cursor", name, "err", err)
			lsn = 0
		}
		l.cursors[name] = lsn
	}
	return nil
}

func (l *Log) readCursor(path string) (uint64, error) {
	f, err := l.fs.OpenFile(path, os.O_RDONLY, 0)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	b := make([]byte, 128)
	n, err := f.ReadAt(b, 0)
	if err != nil && err != io.EOF {
		return 0, err
	}
	line, sum, ok := strings.Cut(strings.TrimSpace(string(b[:n])), " crc=")
	if !ok || !strings.HasPrefix(line, "lsn=") {
		return 0, fmt.Errorf("malformed cursor file %q", b[:n])
	}
	want, err := strconv.ParseUint(sum, 16, 32)
	if err != nil || uint32(want) != crc32.Checksum([]byte(line), castagnoli) {
		return 0, fmt.Errorf("cursor file checksum mismatch")
	}
	return strconv.ParseUint(strings.TrimPrefix(line, "lsn="), 10, 64)
}
