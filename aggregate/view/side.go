package view

// The side store holds the rows no lane can take: rewrites of windows
// already written (an amendment: tstorage keeps a point written out of time
// order hidden in memory until its partition is flushed), windows older
// than every lane's front when no lane is left, and windows starting at or
// before the epoch (tstorage reads a zero time as "now"). It is a map in
// memory, merged into queries, and a file, side.bin, rewritten atomically
// by Sync when it changed: what a checkpoint covers is durable, and what
// came after it is recomputed by the replay that follows a crash.
//
// Rows are dropped keep after they last changed, as tstorage drops a
// partition keep after flushing it. It is folded into an empty lane, in time order, at Open and whenever one
// size holds more than foldRows of its rows, so it stays small: its memory
// is about 300 bytes per row.
//
//	side.bin: magic "EDGEDVS1" | rows: u32 length | i64 changed (unix ns) | row record (record.go) …
//	          | CRC32C u32 of all before

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/nakabonne/tstorage"

	"github.com/edged-io/edged/wal"
)

const (
	sideFile = "side.bin"
	foldRows = 20000
)

var (
	sideMagic  = [8]byte{'E', 'D', 'G', 'E', 'D', 'V', 'S', '1'}
	castagnoli = crc32.MakeTable(crc32.Castagnoli)
)

// sideRow is a row of the side store and when it last changed: it is
// dropped keep after that, as tstorage drops a partition keep after
// flushing it.
type sideRow struct {
	Row
	at int64 // unix ns
}

func (s *Store) putSide(r Row) { s.putSideAt(r, time.Now().UnixNano()) }

func (s *Store) putSideAt(r Row, at int64) {
	k := windowKey{seriesSize{r.Device, r.Series, r.Size}, r.Start}
	old, ok := s.side[k]
	if !ok {
		s.sideN[k.size]++
	}
	s.side[k] = sideRow{mergeRow(old.Row, r), at}
	s.sideDirty = true
}

func (s *Store) dropSide(k windowKey) {
	delete(s.side, k)
	s.sideN[k.size]--
	s.sideDirty = true
}

// loadSide reads side.bin; a damaged one is set aside and reported.
func (s *Store) loadSide() error {
	path := filepath.Join(s.dir, sideFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("view: %w", err)
	}
	rows, err := decodeSide(b)
	if err != nil {
		q := filepath.Join(s.dir, quarantineDir, fmt.Sprintf("%s.%d", sideFile, time.Now().UnixNano()))
		if merr := wal.MkdirAll(filepath.Dir(q)); merr != nil {
			return fmt.Errorf("view: %s: %w (and cannot set it aside: %v)", path, err, merr)
		}
		if rerr := os.Rename(path, q); rerr != nil {
			return fmt.Errorf("view: %s: %w (and cannot set it aside: %v)", path, err, rerr)
		}
		s.damaged = append(s.damaged, fmt.Sprintf("%s: %v; moved to %s", path, err, q))
		return syncDir(s.dir)
	}
	for _, r := range rows {
		if _, ok := s.dbs[r.Size]; ok {
			s.putSideAt(r.Row, r.at)
		}
	}
	s.sideDirty = false
	return nil
}

func decodeSide(b []byte) ([]sideRow, error) {
	if len(b) < 12 || [8]byte(b[:8]) != sideMagic {
		return nil, errors.New("not a side store file")
	}
	if crc32.Checksum(b[:len(b)-4], castagnoli) != binary.LittleEndian.Uint32(b[len(b)-4:]) {
		return nil, errors.New("fails its checksum")
	}
	var rows []sideRow
	for body := b[8 : len(b)-4]; len(body) > 0; {
		if len(body) < 12 || uint64(binary.LittleEndian.Uint32(body)) > uint64(len(body)-12) {
			return nil, errors.New("truncated row")
		}
		n := binary.LittleEndian.Uint32(body)
		at := int64(binary.LittleEndian.Uint64(body[4:]))
		kind, r, _, err := DecodeRecord(body[12 : 12+n])
		if err != nil || kind != RecordRow {
			return nil, fmt.Errorf("bad row: %v", err)
		}
		rows = append(rows, sideRow{r, at})
		body = body[12+n:]
	}
	return rows, nil
}

// encodeSide returns side.bin's new content if the side store changed
// (nil: remove the file), and marks it clean. Called with s.mu held;
// writeSide does the I/O without it.
func (s *Store) encodeSide() (b []byte, changed bool) {
	if !s.sideDirty {
		return nil, false
	}
	s.sideDirty = false
	if len(s.side) == 0 {
		return nil, true
	}
	rows := s.sideRows(0)
	b = append([]byte(nil), sideMagic[:]...)
	var rec []byte
	for i := range rows {
		rec = AppendRowRecord(rec[:0], &rows[i].Row)
		b = binary.LittleEndian.AppendUint32(b, uint32(len(rec)))
		b = binary.LittleEndian.AppendUint64(b, uint64(rows[i].at))
		b = append(b, rec...)
	}
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli)), true
}

// writeSide replaces side.bin with b, or removes it if b is nil.
func (s *Store) writeSide(b []byte) error {
	path := filepath.Join(s.dir, sideFile)
	if b == nil {
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("view: %w", err)
		}
		return syncDir(s.dir)
	}
	if err := wal.WriteFileAtomic(wal.OSFS{}, path, b); err != nil {
		return fmt.Errorf("view: %w", err)
	}
	return nil
}

// sideRows returns the side store's rows of one size (all if size is 0),
// by first point, then series.
func (s *Store) sideRows(size time.Duration) []sideRow {
	var rows []sideRow
	for k, r := range s.side {
		if size == 0 || k.size == size {
			rows = append(rows, r)
		}
	}
	slices.SortFunc(rows, func(a, b sideRow) int {
		ta, _ := firstPoint(&a.Row)
		tb, _ := firstPoint(&b.Row)
		return cmp.Or(cmp.Compare(a.Size, b.Size), cmp.Compare(ta, tb), cmp.Compare(a.Device, b.Device), cmp.Compare(a.Series, b.Series))
	})
	return rows
}

// fold moves the side store's rows of one size into an empty lane, in time
// order, if there is one. Rows at or before the epoch stay.
func (s *Store) fold(d *sizeDB) error {
	if s.sideN[d.size] == 0 || !d.laneAvailable() {
		return nil
	}
	var rows []Row
	for _, r := range s.sideRows(d.size) {
		if t, ok := firstPoint(&r.Row); ok && t > 0 {
			rows = append(rows, r.Row)
		}
	}
	if len(rows) == 0 {
		return nil
	}
	l, err := s.emptyLane(d)
	if err != nil || l == nil {
		return err
	}
	var pts []tstorage.Row
	for i := range rows {
		t, _ := firstPoint(&rows[i])
		l.empty, l.front = false, max(l.front, t)
		pts = appendPoints(pts, &rows[i])
	}
	if err := l.insert(pts); err != nil {
		return err
	}
	for _, r := range rows {
		s.dropSide(windowKey{seriesSize{r.Device, r.Series, r.Size}, r.Start})
	}
	return nil
}

// pruneSide drops the side rows unchanged for longer than retention keeps
// windows.
func (s *Store) pruneSide(now int64) {
	for k, r := range s.side {
		if d := s.dbs[k.size]; d != nil && r.at < now-int64(d.keep) {
			s.dropSide(k)
		}
	}
}
