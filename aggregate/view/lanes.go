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
	"encoding/json"
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
	// head takes the lane's rows; closed are the generations rolled
	// before it (and the lane directory's own partitions, from earlier
	// releases), read-only. See gen.
	head   *gen
	closed []*gen
	// retired: closed generations retention removed, still mapped until
	// no query can read them (Store.release).
	retired []tstorage.Storage
	next    int // number of the next generation directory
	// empty: no point in any partition and none sent since Open.
	empty bool
	// front is the largest first-point time of a row sent to the lane
	// (or, after Open, the end of its newest partition).
	front int64
	// synced holds the flushed partitions (by path below dir) whose files
	// have been fsynced: tstorage never rewrites a partition once its
	// meta.json exists.
	synced map[string]bool
	// The head's span: fresh until its first insert, then the span of its
	// points (the sentinel's included).
	headFresh        bool
	headMin, headMax int64
}

// A gen (generation) is one tstorage database of a lane, in
// DIR/<lane>/g<k>. tstorage is never left to start a partition itself
// (its partition duration is unbounded): it would flush the older ones in
// a goroutine, two of which can flush the same partition at once, and
// name its log segments 0, 1, …, 10 and remove "the oldest" in name order
// — after ten partitions it removes the head's own log, and a kill then
// loses up to a partition of windows the checkpoint counts as stored
// (TestManyPartitionsSurviveKill). So a head holds one in-memory partition;
// when it spans the size's partition duration the lane rolls it: Close
// flushes it to disk (its log hard-linked aside in wal.keep until the
// partition is fsynced), it stays open read-only, and an empty head starts
// in a new directory. Each partition is mapped into memory once (a
// reopened database maps all its partitions again), and unmapped when its
// generation is removed or the store closes (unmap.go: tstorage itself
// never unmaps).
type gen struct {
	dir string
	// db is nil for a rolled generation until a query needs it (lane.dbs):
	// opening every generation at start took half a second after three
	// days of windows.
	db tstorage.Storage
	// loadErr: opening it failed; kept, not retried by every query
	// (tstorage leaks its log file on a failed open).
	loadErr error
	// Closed generations: the span of their partitions (closed
	// databases still read; only the head's is open).
	min, max int64
}

// load opens a closed generation's database if it is not open yet, and
// closes it at once: a closed database still reads (as a rolled head
// does) without keeping tstorage's expiry goroutine, and Close flushes
// what its log recovered.
func (g *gen) load(d *sizeDB) (tstorage.Storage, error) {
	if g.db != nil || g.loadErr != nil {
		return g.db, g.loadErr
	}
	fail := func(err error) (tstorage.Storage, error) {
		g.loadErr = fmt.Errorf("view: open %s: %w", g.dir, err)
		return nil, g.loadErr
	}
	// tstorage would make a removed directory anew and read it as empty
	// (a snapshot's copy removed under a long-running reader, say).
	if _, err := os.Stat(g.dir); err != nil {
		return fail(err)
	}
	db, err := tstorage.NewStorage(d.options(g.dir)...)
	if err != nil {
		return fail(err)
	}
	if err := db.Close(); err != nil {
		unmap(db)
		return fail(err)
	}
	g.db = db
	return db, nil
}

// span sets the generation's span to that of its partitions (none:
// min MaxInt64, max MinInt64).
func (g *gen) span(parts []partitionRange) {
	g.min, g.max = math.MaxInt64, math.MinInt64
	for _, p := range parts {
		g.min, g.max = min(g.min, p.min), max(g.max, p.max)
	}
}

// genPrefix names generation directories: g<k>.
const genPrefix = "g"

// keepDir holds hard links to a head's log while the head is rolled.
const keepDir = "wal.keep"

// sizeDB is the lanes of one window size.
type sizeDB struct {
	size  time.Duration
	part  time.Duration // tstorage partition duration
	keep  time.Duration
	slack int64
	lanes []*lane
}

// Memory: tstorage keeps a head's points in memory, about 1.25 KiB of
// heap per window (a heap copy of the whole tstorage.Row behind every
// point, 16 points a window), so a head spans windowsPerPartition windows
// (hour-long partitions held 360 ten-second windows a series, several
// hours of one-second ones); a flushed partition costs about 240 bytes of
// heap per series while it is kept, so each size keeps at most
// keepWindows windows (TestMemoryBounded).
const (
	windowsPerPartition = 32
	keepWindows         = 4320
)

func newSizeDB(size, keep time.Duration) *sizeDB {
	if keep <= 0 {
		keep = DefaultKeep
	}
	part := windowsPerPartition * size
	// Slack: a few windows of skew between series (their watermarks and
	// idle closes differ), and always far less than a partition.
	slack := int64(6 * size)
	return &sizeDB{size: size, part: part, keep: max(min(keep, keepWindows*size), 2*part), slack: slack}
}

func (d *sizeDB) options(dir string) []tstorage.Option {
	return []tstorage.Option{
		tstorage.WithDataPath(dir),
		// The lane starts partitions itself (see gen).
		tstorage.WithPartitionDuration(time.Duration(math.MaxInt64)),
		// Retention removes whole generations (lane.roll); tstorage's
		// own would remove partitions without unmapping them.
		tstorage.WithRetention(100 * 365 * 24 * time.Hour),
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

func laneNumber(name, base string) (int, bool) { return numberAfter(name, base+".") }

func genNumber(name string) (int, bool) { return numberAfter(name, genPrefix) }

// numberAfter parses name as prefix followed by a number ≥ 1 written as
// strconv.Itoa writes it (no sign, no leading zero).
func numberAfter(name, prefix string) (int, bool) {
	rest, ok := strings.CutPrefix(name, prefix)
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
	newLane := func() *lane {
		return &lane{d: d, dir: dir, n: n, empty: true, front: math.MinInt64, synced: map[string]bool{}, next: 1}
	}
	l := newLane()
	err := l.open()
	if err != nil {
		l.closeAll()
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
		l = newLane()
		if err := l.open(); err != nil {
			l.closeAll()
			return nil, fmt.Errorf("view: open %v windows: %w", d.size, err)
		}
	}
	if err := l.sync(); err != nil {
		l.closeAll()
		return nil, err
	}
	return l, nil
}

// open opens the lane's generations — the lane directory itself (the
// layout of earlier releases) and g<k> — read-only, flushing what their
// logs recovered, removes the empty ones, and starts a head.
func (l *lane) open() error {
	if err := wal.MkdirAll(l.dir); err != nil {
		return err
	}
	names, err := readDirNames(l.dir)
	if err != nil {
		return err
	}
	type gd struct {
		dir   string
		k     int
		parts []partitionRange
		rec   bool // its log held points (or a roll was interrupted)
	}
	gens := []gd{{dir: l.dir}}
	for _, name := range names {
		if k, ok := genNumber(name); ok {
			gens = append(gens, gd{dir: filepath.Join(l.dir, name), k: k})
			l.next = max(l.next, k+1)
		}
	}
	slices.SortFunc(gens, func(a, b gd) int { return a.k - b.k })
	// Retention first, from the partitions' names: what it removes is
	// never opened (so never mapped).
	front := int64(math.MinInt64)
	for i := range gens {
		g := &gens[i]
		kept, err := restoreKeep(g.dir)
		if err != nil {
			return err
		}
		g.rec = kept || hasLog(g.dir)
		g.parts = partitions(g.dir)
		for _, p := range g.parts {
			front = max(front, p.max)
		}
	}
	horizon := l.d.horizon(front)
	for _, g := range gens {
		if !g.rec {
			var left []partitionRange
			for _, p := range g.parts {
				if p.max >= horizon {
					left = append(left, p)
				} else if g.k == 0 { // the layout of earlier releases: partitions one by one
					if err := os.RemoveAll(filepath.Join(g.dir, p.name)); err != nil {
						return fmt.Errorf("view: retention: %w", err)
					}
				}
			}
			if g.k == 0 {
				g.parts = left
			}
			if g.k > 0 && len(left) == 0 {
				// Past retention, or empty (a head that never took a row).
				if err := os.RemoveAll(g.dir); err != nil {
					return fmt.Errorf("view: retention: %w", err)
				}
				continue
			}
		}
		c := &gen{dir: g.dir}
		if g.rec || g.k == 0 {
			// Opened now: its log is flushed into a partition (the lane
			// directory itself is read by every query). A rolled
			// generation is opened when a query needs it.
			if _, err := c.load(l.d); err != nil {
				return err
			}
			if g.rec {
				g.parts = partitions(g.dir)
			}
		} else {
			// What opening it would find damaged is found now, so that
			// the lane is set aside and recomputed, as before.
			for _, p := range g.parts {
				if err := checkPartition(filepath.Join(g.dir, p.name)); err != nil {
					return err
				}
			}
		}
		c.span(g.parts)
		if c.max == math.MinInt64 && g.k > 0 {
			// Its log held nothing (a rolled generation without a
			// partition was removed above).
			if _, err := unmap(c.db); err != nil {
				return err
			}
			if err := os.RemoveAll(g.dir); err != nil {
				return err
			}
			continue
		}
		if !g.rec && g.k > 0 {
			// A rolled generation: the roll fsynced it before it removed
			// wal.keep (had it not finished, restoreKeep put the log back).
			// Not walking them keeps a start after a long run quick.
			l.synced[filepath.Base(g.dir)] = true
		}
		l.closed = append(l.closed, c)
		if c.max != math.MinInt64 {
			l.empty = false
			l.front = max(l.front, c.max)
		}
	}
	return l.startHead()
}

// expire removes the closed generations whose windows all lie before the
// lane's retention horizon (sizeDB.horizon): retention counts event time,
// so a replay of a month keeps what the live daemon would, not a month of
// generations until they age. Their mappings go when no query can read
// them (Store.release).
func (l *lane) expire() error {
	horizon := l.d.horizon(l.front)
	if horizon == math.MinInt64 {
		return nil
	}
	kept := l.closed[:0]
	for _, c := range l.closed {
		if c.dir != l.dir && c.max < horizon {
			if err := os.RemoveAll(c.dir); err != nil {
				return fmt.Errorf("view: retention: %w", err)
			}
			if c.db != nil {
				l.retired = append(l.retired, c.db)
			}
			continue
		}
		kept = append(kept, c)
	}
	l.closed = kept
	return nil
}

// horizon is where retention cuts a lane whose newest point is at front:
// keep before the front or before the wall clock, whichever is earlier. So
// a replay of last month keeps what the daemon would, while neither a
// reading stamped years ahead (which moves its lane's front) nor a clock
// that is ahead removes a window that is recent by the other; a Pi that
// booted at 1970 removes nothing until its clock is set. MinInt64: none.
func (d *sizeDB) horizon(front int64) int64 {
	h := min(front, time.Now().UnixNano()) - int64(d.keep)
	if h > front {
		return math.MinInt64 // before the start of time
	}
	return h
}

// startHead starts an empty head in a new generation directory.
func (l *lane) startHead() error {
	dir := filepath.Join(l.dir, fmt.Sprintf("%s%d", genPrefix, l.next))
	if err := wal.MkdirAll(dir); err != nil {
		return err
	}
	db, err := tstorage.NewStorage(l.d.options(dir)...)
	if err != nil {
		return err
	}
	l.next++
	l.head, l.headFresh = &gen{dir: dir, db: db}, true
	return nil
}

// roll flushes the head to a partition on disk, durably, keeps it as a
// closed generation and starts a new head; closed generations past
// retention are removed.
func (l *lane) roll() error {
	h := l.head
	keep := filepath.Join(h.dir, keepDir)
	if err := linkLog(filepath.Join(h.dir, "wal"), keep); err != nil {
		return fmt.Errorf("view: roll %s: %w", h.dir, err)
	}
	// tstorage writes the partition, then removes its log; the links
	// keep the log until the partition is fsynced below.
	l.head = nil
	if err := h.db.Close(); err != nil {
		return fmt.Errorf("view: roll %s: %w", h.dir, err)
	}
	if err := l.sync(); err != nil {
		return err
	}
	if err := os.RemoveAll(keep); err != nil {
		return fmt.Errorf("view: roll %s: %w", h.dir, err)
	}
	if err := syncDir(h.dir); err != nil {
		return err
	}
	h.span(partitions(h.dir))
	l.closed = append(l.closed, h)
	if err := l.expire(); err != nil {
		return err
	}
	return l.startHead()
}

// dbs appends to out the lane's databases whose points may lie in
// [from, to], opening closed generations that are not open yet.
func (l *lane) dbs(out []tstorage.Storage, from, to int64) ([]tstorage.Storage, error) {
	for _, c := range l.closed {
		if c.dir == l.dir || (c.max >= from && c.min <= to) {
			db, err := c.load(l.d)
			if err != nil {
				return out, err
			}
			out = append(out, db)
		}
	}
	if l.head != nil {
		out = append(out, l.head.db)
	}
	return out, nil
}

// closeAll closes the lane's databases and unmaps their partitions. No
// query may be running on them.
func (l *lane) closeAll() error {
	var errs []error
	var dbs []tstorage.Storage
	if l.head != nil {
		errs = append(errs, l.head.db.Close())
		dbs = append(dbs, l.head.db)
		l.head = nil
	}
	for _, c := range l.closed {
		if c.db != nil {
			dbs = append(dbs, c.db)
		}
	}
	l.closed = nil
	dbs = append(dbs, l.retired...)
	l.retired = nil
	for _, db := range dbs {
		if _, err := unmap(db); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// hasLog reports whether a database directory's tstorage log holds
// anything.
func hasLog(dir string) bool {
	ents, _ := os.ReadDir(filepath.Join(dir, "wal"))
	for _, e := range ents {
		if info, err := e.Info(); err == nil && info.Size() > 0 {
			return true
		}
	}
	return false
}

// linkLog hard-links the segments of a tstorage log into keep.
func linkLog(log, keep string) error {
	if err := wal.MkdirAll(keep); err != nil {
		return err
	}
	names, err := readDirNames(log)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	for _, n := range names {
		if err := os.Link(filepath.Join(log, n), filepath.Join(keep, n)); err != nil && !errors.Is(err, os.ErrExist) {
			return err
		}
	}
	return syncDir(keep)
}

// restoreKeep finishes a roll a crash interrupted: segments the log no
// longer has go back from keep (their points are re-read; a partition the
// roll had flushed then holds them twice, which Query merges).
// It reports whether there was one.
func restoreKeep(dir string) (bool, error) {
	keep := filepath.Join(dir, keepDir)
	names, err := readDirNames(keep)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	log := filepath.Join(dir, "wal")
	if err := wal.MkdirAll(log); err != nil {
		return false, err
	}
	for _, n := range names {
		if _, err := os.Stat(filepath.Join(log, n)); err == nil {
			continue
		}
		if err := os.Rename(filepath.Join(keep, n), filepath.Join(log, n)); err != nil {
			return false, err
		}
	}
	if err := syncDir(log); err != nil {
		return false, err
	}
	if err := os.RemoveAll(keep); err != nil {
		return false, err
	}
	return true, syncDir(dir)
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
		if _, err := os.Stat(filepath.Join(dir, name, "meta.json")); err != nil {
			continue
		}
		if data, err := os.Stat(filepath.Join(dir, name, "data")); err != nil || data.Size() == 0 {
			// Empty: tstorage's Close flushes its empty in-memory
			// partitions to p-0-0, rewritten at every Close.
			continue
		}
		lo, err1 := strconv.ParseInt(parts[1], 10, 64)
		hi, err2 := strconv.ParseInt(parts[2], 10, 64)
		if err1 != nil || err2 != nil {
			// A snapshot's link (p-snapshot-N): its span is in its meta.
			var m struct{ MinTimestamp, MaxTimestamp int64 }
			b, err := os.ReadFile(filepath.Join(dir, name, "meta.json"))
			if err != nil || json.Unmarshal(b, &m) != nil {
				continue
			}
			lo, hi = m.MinTimestamp, m.MaxTimestamp
		}
		out = append(out, partitionRange{name, lo, hi})
	}
	return out
}

// checkPartition checks a flushed tstorage partition as tstorage's open
// does (its data file opens, its meta.json decodes into tstorage's
// layout), and that no metric's offset lies past the data, without
// opening the database: a rolled generation is opened when first read.
func checkPartition(dir string) error {
	fail := func(err error) error { return fmt.Errorf("view: damaged partition %s: %w", dir, err) }
	data, err := os.Stat(filepath.Join(dir, "data"))
	if err != nil {
		return fail(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "meta.json"))
	if err != nil {
		return fail(err)
	}
	var m struct { // tstorage's meta (disk_partition.go)
		MinTimestamp, MaxTimestamp int64
		NumDataPoints              int
		Metrics                    map[string]struct {
			Name                                              string
			Offset, MinTimestamp, MaxTimestamp, NumDataPoints int64
		}
		CreatedAt time.Time
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return fail(fmt.Errorf("decode meta.json: %w", err))
	}
	for name, mt := range m.Metrics {
		if mt.Offset < 0 || mt.Offset > data.Size() { // a metric with no point here ends the data
			return fail(fmt.Errorf("metric %q at offset %d of %d bytes of data", name, mt.Offset, data.Size()))
		}
	}
	return nil
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
	// Partitions complete now are complete in the walk below; so are the
	// closed generations (a roll syncs its head after closing it).
	var complete []string
	for _, p := range partitions(l.dir) {
		complete = append(complete, p.name)
	}
	for _, c := range l.closed {
		if c.dir != l.dir {
			rel, _ := filepath.Rel(l.dir, c.dir)
			complete = append(complete, rel)
		}
	}
	if h := l.head; h != nil {
		rel, _ := filepath.Rel(l.dir, h.dir)
		for _, p := range partitions(h.dir) {
			complete = append(complete, filepath.Join(rel, p.name))
		}
	}
	var files, dirs []string
	err := filepath.WalkDir(l.dir, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil // removed by tstorage meanwhile (retention, flush)
			}
			return err
		}
		rel, _ := filepath.Rel(l.dir, path)
		if e.IsDir() && l.synced[rel] {
			return filepath.SkipDir
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
	for _, rel := range complete {
		l.synced[rel] = true
	}
	return nil
}
