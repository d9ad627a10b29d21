package view

// Lanes: how the store keeps tstorage from dropping windows.
//
// tstorage writes a point into its newest ("head") in-memory partition only
// if the point is not older than the first point that partition received;
// older points go to the partition before it, and points older than that
// are dropped without an error (or refused, once that partition is on
// disk). Its Select also stops at the first partition, newest first, that
// ends before the range asked for. So one database per window size holds
// windows only as long as they arrive nearly in time order — which they do
// not when series' event times differ: a local sensor at now beside a device
// stamping an hour behind, a gateway uploading its buffer, a Pi that booted
// at 1970.
//
// A size therefore has several databases, lanes: DIR/<size> (lane 0, the
// layout of earlier releases) and DIR/<size>.<n>. Each lane has a front, the
// largest first-point time of a row sent to it; a lane takes a row only if
// the row starts no more than slack (a few windows) before its front. That
// keeps every row in the head partition (its first point is at least the
// front at the partition's creation minus slack, and partitions last at
// least an hour, which is longer) and bounds by slack how far an older
// partition can reach past a newer one; Query asks for slack more than it
// needs, so Select's early stop never hides a window. A row goes to the
// lane with the largest front that takes it, so that each front of event
// times settles in its own lane; when none does, to an empty lane, or a new
// one (at most maxLanes); when none is left, to the side store (side.go).
//
// At Open every lane is closed once (tstorage then flushes what its log
// recovered into disk partitions, sorted, and removes its log) and opened
// again: no point waits in memory, hidden, from an earlier run, and the
// front is the end of the lane's newest partition. A lane that does not
// open (a torn tstorage log, a damaged partition) is moved to
// DIR/quarantine/ and replaced by an empty one; Damaged reports it, and the
// stream then recomputes the views from the readings log.

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nakabonne/tstorage"

	"github.com/edged-io/edged/wal"
)

// maxLanes bounds the databases of one size.
const maxLanes = 8

// quarantineDir keeps the lanes that did not open.
const quarantineDir = "quarantine"

type lane struct {
	d   *sizeDB
	dir string
	n   int // lane number: 0 is DIR/<size>
	db  tstorage.Storage
	// empty: no point in any partition and none sent since Open.
	empty bool
	// front is the largest first-point time of a row sent to the lane
	// (or, after Open, the end of its newest partition).
	front int64
	// synced holds the flushed partitions whose files have been fsynced:
	// tstorage never rewrites a partition once its meta.json exists.
	synced map[string]bool
	// The head partition as tstorage keeps it (see insert): fresh until
	// the first insert since Open, then the span of its points.
	headFresh        bool
	headMin, headMax int64
}

// sizeDB is the lanes of one window size.
type sizeDB struct {
	size  time.Duration
	part  time.Duration // tstorage partition duration
	keep  time.Duration
	slack int64
	lanes []*lane
}

func newSizeDB(size, keep time.Duration) *sizeDB {
	part := max(time.Hour, 24*size)
	// Slack: a few windows of skew between series (their watermarks and
	// idle closes differ), and always far less than a partition.
	slack := min(int64(6*size), int64(part/8))
	return &sizeDB{size: size, part: part, keep: max(keep, 2*part), slack: slack}
}

func (d *sizeDB) options(dir string) []tstorage.Option {
	return []tstorage.Option{
		tstorage.WithDataPath(dir),
		tstorage.WithPartitionDuration(d.part),
		tstorage.WithRetention(d.keep),
		tstorage.WithTimestampPrecision(tstorage.Nanoseconds),
		tstorage.WithWALBufferedSize(0), // every write reaches the OS: a kill -9 loses nothing
	}
}

// laneDirs lists the lanes of size under dir, lane 0 first (whether it
// exists or not), then by number.
func laneDirs(dir string, size time.Duration) ([]string, []int, error) {
	base := size.String()
	dirs, nums := []string{filepath.Join(dir, base)}, []int{0}
	names, err := readDirNames(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, nil, err
	}
	type ln struct {
		name string
		n    int
	}
	var more []ln
	for _, name := range names {
		if n, ok := laneNumber(name, base); ok {
			more = append(more, ln{name, n})
		}
	}
	slices.SortFunc(more, func(a, b ln) int { return a.n - b.n })
	for _, l := range more {
		dirs, nums = append(dirs, filepath.Join(dir, l.name)), append(nums, l.n)
	}
	return dirs, nums, nil
}

func laneNumber(name, base string) (int, bool) {
	rest, ok := strings.CutPrefix(name, base+".")
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(rest)
	if err != nil || n < 1 || strconv.Itoa(n) != rest {
		return 0, false
	}
	return n, true
}

// openLane opens one lane as the file comment describes, quarantining it
// if it does not open. damaged is non-empty when it was quarantined.
func (s *Store) openLane(d *sizeDB, dir string, n int) (*lane, error) {
	open := func() (tstorage.Storage, error) {
		db, err := tstorage.NewStorage(d.options(dir)...)
		if err != nil {
			return nil, err
		}
		// Flush what the log recovered; the reopened database has no
		// point in memory.
		if err := db.Close(); err != nil {
			return nil, err
		}
		if db, err = tstorage.NewStorage(d.options(dir)...); err != nil {
			return nil, err
		}
		return db, nil
	}
	db, err := open()
	if err != nil {
		q := filepath.Join(s.dir, quarantineDir, fmt.Sprintf("%s.%d", filepath.Base(dir), time.Now().UnixNano()))
		if merr := wal.MkdirAll(filepath.Dir(q)); merr != nil {
			return nil, fmt.Errorf("view: open %v windows: %w (and cannot quarantine it: %v)", d.size, err, merr)
		}
		if rerr := os.Rename(dir, q); rerr != nil {
			return nil, fmt.Errorf("view: open %v windows: %w (and cannot quarantine it: %v)", d.size, err, rerr)
		}
		s.damaged = append(s.damaged, fmt.Sprintf("%v windows in %s do not open (%v); moved to %s", d.size, dir, err, q))
		if err := syncDir(s.dir); err != nil {
			return nil, err
		}
		if db, err = tstorage.NewStorage(d.options(dir)...); err != nil {
			return nil, fmt.Errorf("view: open %v windows: %w", d.size, err)
		}
	}
	l := &lane{d: d, dir: dir, n: n, db: db, empty: true, front: math.MinInt64, synced: map[string]bool{}, headFresh: true}
	for _, p := range partitions(dir) {
		l.empty = false
		l.front = max(l.front, p.max)
	}
	if err := l.sync(); err != nil {
		db.Close()
		return nil, err
	}
	return l, nil
}

type partitionRange struct {
	name     string
	min, max int64
}

// partitions lists the flushed partitions of a lane by their names
// (p-<min>-<max>, complete once meta.json exists).
func partitions(dir string) []partitionRange {
	names, _ := readDirNames(dir)
	var out []partitionRange
	for _, name := range names {
		parts := strings.Split(name, "-")
		if len(parts) != 3 || parts[0] != "p" {
			continue
		}
		lo, err1 := strconv.ParseInt(parts[1], 10, 64)
		hi, err2 := strconv.ParseInt(parts[2], 10, 64)
		if err1 != nil || err2 != nil {
			continue
		}
		if _, err := os.Stat(filepath.Join(dir, name, "meta.json")); err != nil {
			continue
		}
		out = append(out, partitionRange{name, lo, hi})
	}
	return out
}

// takes reports whether the lane may receive a row whose first point is
// at t.
func (l *lane) takes(t, slack int64) bool {
	return l.empty || t >= l.front-slack
}

// pick chooses the lane for a row whose first point is at t, opening a new
// one if needed; nil means none (the side store takes the row).
func (s *Store) pick(d *sizeDB, t int64) (*lane, error) {
	var best *lane
	for _, l := range d.lanes {
		if !l.empty && l.takes(t, d.slack) && (best == nil || l.front > best.front) {
			best = l
		}
	}
	if best != nil {
		return best, nil
	}
	return s.emptyLane(d)
}

// laneAvailable reports whether emptyLane would return a lane.
func (d *sizeDB) laneAvailable() bool {
	return len(d.lanes) < maxLanes || slices.ContainsFunc(d.lanes, func(l *lane) bool { return l.empty })
}

// emptyLane returns an empty lane of d, opening a new one if there is none
// and fewer than maxLanes exist; nil if none is left.
func (s *Store) emptyLane(d *sizeDB) (*lane, error) {
	for _, l := range d.lanes {
		if l.empty {
			return l, nil
		}
	}
	if len(d.lanes) >= maxLanes {
		return nil, nil
	}
	n := d.lanes[len(d.lanes)-1].n + 1
	dir := filepath.Join(s.dir, fmt.Sprintf("%s.%d", d.size, n))
	if err := wal.MkdirAll(dir); err != nil {
		return nil, fmt.Errorf("view: new lane for %v windows: %w", d.size, err)
	}
	l, err := s.openLane(d, dir, n)
	if err != nil {
		return nil, err
	}
	d.lanes = append(d.lanes, l)
	return l, nil
}

// sync makes the lane's files durable: its tstorage log (written through
// to the OS on every insert), the partitions flushed since the last sync,
// and the directories.
func (l *lane) sync() error {
	// Partitions complete now are complete in the walk below.
	complete := partitions(l.dir)
	var files, dirs []string
	err := filepath.WalkDir(l.dir, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil // removed by tstorage meanwhile (retention, flush)
			}
			return err
		}
		rel, _ := filepath.Rel(l.dir, path)
		top, _, _ := strings.Cut(rel, string(filepath.Separator))
		if strings.HasPrefix(top, "p-") && l.synced[top] {
			if e.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if e.IsDir() {
			dirs = append(dirs, path)
		} else {
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("view: sync %s: %w", l.dir, err)
	}
	for _, f := range files {
		if err := wal.SyncPath(f); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("view: sync: %w", err)
		}
	}
	// Directories after their files, deepest first, the lane's own last.
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := wal.SyncPath(dirs[i]); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("view: sync: %w", err)
		}
	}
	for _, p := range complete {
		l.synced[p.name] = true
	}
	return nil
}
