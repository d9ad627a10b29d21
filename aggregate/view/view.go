// Package view is the local view store: closed windows kept in tstorage so
// that the HTTP API can answer "series S, window size W, from T1 to T2"
// without the central store.
//
// # Layout and idempotence
//
// Each window size has its own tstorage databases, lanes, under
// DIR/<size> and DIR/<size>.<n>, kept so that tstorage never drops a
// window however series' event times differ (lanes.go; each lane is a
// series of tstorage databases, generations, of 32 windows each, which
// bounds the heap), and a side store
// for rewritten and otherwise unplaceable windows (side.go). A series is
// one tstorage metric per size, labelled with device and series; a window
// is one point per field (count, sum, min, …) at its start time plus the
// field's index in ns — windows are aligned to their size, so start and
// field are recovered exactly. One metric per series and size, not per
// field, matters: tstorage allocates 1,000 point slots (8 KiB) per metric
// and in-memory partition.
//
// A window may be written more than once: its writer (aggregate/stream)
// rewrites the whole row when amendments add to its accounting, with a
// larger applied_lsn. Query merges the points of one window by taking, per
// field, the largest value: rewrites carry the same aggregates and
// accounting totals that only grow.
//
// # Versions
//
// A Store holds the windows of one aggregate configuration. The daemon
// keeps each configuration's windows, a version, in its own directory
// under DATA/views, writes one of them and reads any: see version.go
// (VersionDir, Migrate, LockVersion, OpenSnapshot, Active).
package view

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/nakabonne/tstorage"

	"github.com/edged-io/edged/wal"
)

// metric names every series' points in the per-size databases.
const metric = "window"

// Row is one window of one series.
type Row struct {
	Device string        `json:"device"`
	Series string        `json:"series"`
	Unit   string        `json:"unit,omitempty"`
	Size   time.Duration `json:"-"`
	Start  int64         `json:"start"` // ns since the epoch
	End    int64         `json:"end"`
	// Fields in Fields order; NaN where a field was not stored.
	Values []float64 `json:"-"`
}

// Fields are the stored fields of a window, in Row.Values order.
var Fields = []string{"count", "sum", "min", "max", "mean", "first", "last", "p50", "p95", "p99",
	"late", "duplicates", "conflicts", "untrusted", "close_lsn", "applied_lsn"}

// FieldIndex returns the position of a field in Fields, or -1.
func FieldIndex(name string) int { return slices.Index(Fields, name) }

// SeriesInfo describes a stored series.
type SeriesInfo struct {
	Device string   `json:"device"`
	Series string   `json:"series"`
	Unit   string   `json:"unit,omitempty"`
	Sizes  []string `json:"windows"`
}

// testHookQuery, when set (by tests), runs in Query between choosing the
// databases and reading them.
var testHookQuery func()

// Store holds the windows.
type Store struct {
	dir string

	// reading is held by queries while they read tstorage databases, and
	// taken to unmap databases (release, Close); taken before mu.
	reading sync.RWMutex
	mu      sync.Mutex
	dbs     map[time.Duration]*sizeDB
	series  map[string]*SeriesInfo // device + "\x00" + series
	dirty   bool
	// latest is the latest window start sent to a lane, per series and
	// size, since Open: a row at or before it is a rewrite (side.go).
	latest    map[seriesSize]int64
	side      map[windowKey]sideRow
	sideN     map[time.Duration]int // side rows per size
	sideDirty bool
	damaged   []string
}

type seriesSize struct {
	device, series string
	size           time.Duration
}

type windowKey struct {
	seriesSize
	start int64
}

// Open opens (or creates) the store in dir for the given window sizes.
// Retention keeps the windows of each size that start no more than keep
// (DefaultKeep when keep ≤ 0), and no more than 4,320 windows of the size,
// before the newest (lanes.go: the store's heap depends on it). Damaged
// parts are set aside rather than refused: see Damaged.
func Open(dir string, sizes []time.Duration, keep time.Duration) (*Store, error) {
	if err := wal.MkdirAll(dir); err != nil {
		return nil, fmt.Errorf("view: %w", err)
	}
	s := &Store{dir: dir, dbs: map[time.Duration]*sizeDB{}, series: map[string]*SeriesInfo{},
		latest: map[seriesSize]int64{}, side: map[windowKey]sideRow{}, sideN: map[time.Duration]int{}}
	for _, size := range sizes {
		d := newSizeDB(size, keep)
		s.dbs[size] = d
		dirs, nums, err := laneDirs(dir, size)
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("view: %w", err)
		}
		for i, ldir := range dirs {
			l, err := s.openLane(d, ldir, nums[i])
			if err != nil {
				s.Close()
				return nil, err
			}
			d.lanes = append(d.lanes, l)
		}
	}
	if b, err := os.ReadFile(filepath.Join(dir, seriesFile)); err == nil {
		var list []SeriesInfo
		if err := json.Unmarshal(b, &list); err != nil {
			// Only the listing: Put notes every series again.
			s.damaged = append(s.damaged, fmt.Sprintf("%s: %v", filepath.Join(dir, seriesFile), err))
		}
		for i := range list {
			s.series[list[i].Device+"\x00"+list[i].Series] = &list[i]
		}
	}
	if err := s.loadSide(); err != nil {
		s.Close()
		return nil, err
	}
	for _, d := range s.dbs {
		if err := s.fold(d); err != nil {
			s.Close()
			return nil, err
		}
	}
	return s, nil
}

// Damaged describes what Open found damaged and set aside (under
// DIR/quarantine): the windows it held are missing until they are
// recomputed from the readings log. Empty if nothing was.
func (s *Store) Damaged() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.damaged)
}

// StoreStats describe the store's layout.
type StoreStats struct {
	// Lanes is the number of tstorage databases over all sizes.
	Lanes int
	// SideRows is the number of rows in the side store.
	SideRows int
}

// Stats returns the store's layout figures.
func (s *Store) Stats() StoreStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := StoreStats{SideRows: len(s.side)}
	for _, d := range s.dbs {
		st.Lanes += len(d.lanes)
	}
	return st
}

// Put stores windows. Rows of a size the store was not opened with are an
// error. One writer at a time.
func (s *Store) Put(rows []Row) error {
	for _, r := range rows {
		if _, ok := s.dbs[r.Size]; !ok || r.Start%int64(r.Size) != 0 {
			return fmt.Errorf("view: no store for %v windows (configured: %v)", r.Size, s.sizes())
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	batches := map[*lane][]tstorage.Row{}
	for i := range rows {
		r := &rows[i]
		s.note(*r)
		t, ok := firstPoint(r)
		if !ok {
			continue
		}
		ss := seriesSize{r.Device, r.Series, r.Size}
		if latest, seen := s.latest[ss]; (seen && r.Start <= latest) || t <= 0 {
			s.putSide(*r)
			continue
		}
		s.latest[ss] = r.Start
		d := s.dbs[r.Size]
		l, err := s.pick(d, t)
		if err != nil {
			return err
		}
		if l == nil {
			s.putSide(*r)
			continue
		}
		l.empty, l.front = false, max(l.front, t)
		batches[l] = appendPoints(batches[l], r)
	}
	for l, pts := range batches {
		if err := l.insert(pts); err != nil {
			return fmt.Errorf("view: store windows in %s: %w", l.dir, err)
		}
	}
	for _, d := range s.dbs {
		if s.sideN[d.size] > foldRows && d.laneAvailable() {
			if err := s.fold(d); err != nil {
				return err
			}
		}
	}
	return nil
}

// sentinelMetric names the point that opens each head partition (see
// lane.insert); queries never ask for it.
const sentinelMetric = "lane"

// insert writes points to the lane. tstorage's head partition takes points
// no older than the first it received; when this insert starts a head (the
// lane's first insert since Open, or the head has spanned its partition
// duration, which is when tstorage starts another), a sentinel point slack
// below the batch's oldest comes first, so the head takes every row the
// lane takes (see lanes.go).
func (l *lane) insert(pts []tstorage.Row) error {
	d := l.d
	if len(pts) == 0 {
		return nil
	}
	lo, hi := pts[0].Timestamp, pts[0].Timestamp
	for _, p := range pts {
		lo, hi = min(lo, p.Timestamp), max(hi, p.Timestamp)
	}
	if !l.headFresh && l.headMax-l.headMin+1 >= int64(d.part) {
		if err := l.roll(); err != nil {
			return err
		}
	}
	if l.head == nil { // a roll failed after closing the head
		if err := l.startHead(); err != nil {
			return err
		}
	}
	if l.headFresh {
		sentinel := max(lo-d.slack, 1)
		pts = append([]tstorage.Row{{Metric: sentinelMetric, DataPoint: tstorage.DataPoint{Timestamp: sentinel}}}, pts...)
		l.headFresh, l.headMin, l.headMax = false, sentinel, hi
	} else {
		l.headMax = max(l.headMax, hi)
	}
	return l.head.db.InsertRows(pts)
}

// firstPoint is the time of a row's first stored point: its start plus
// the index of its first field that is set.
func firstPoint(r *Row) (int64, bool) {
	for i, v := range r.Values {
		if !math.IsNaN(v) {
			return r.Start + int64(i), true
		}
	}
	return 0, false
}

// appendPoints appends a row's points: field i at start+i ns.
func appendPoints(dst []tstorage.Row, r *Row) []tstorage.Row {
	labels := []tstorage.Label{{Name: "device", Value: r.Device}, {Name: "series", Value: r.Series}}
	for i, v := range r.Values {
		if !math.IsNaN(v) {
			dst = append(dst, tstorage.Row{Metric: metric, Labels: labels,
				DataPoint: tstorage.DataPoint{Timestamp: r.Start + int64(i), Value: v}})
		}
	}
	return dst
}

func (s *Store) note(r Row) {
	key := r.Device + "\x00" + r.Series
	info, ok := s.series[key]
	if !ok {
		info = &SeriesInfo{Device: r.Device, Series: r.Series, Unit: r.Unit}
		s.series[key] = info
		s.dirty = true
	}
	if size := r.Size.String(); !slices.Contains(info.Sizes, size) {
		info.Sizes = append(info.Sizes, size)
		s.dirty = true
	}
}

// Series lists the stored series, sorted.
func (s *Store) Series() []SeriesInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]SeriesInfo, 0, len(s.series))
	for _, info := range s.series {
		out = append(out, *info)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Series != out[j].Series {
			return out[i].Series < out[j].Series
		}
		return out[i].Device < out[j].Device
	})
	return out
}

// Query returns the windows of one series and size that start in
// [from, to), in time order, each merged as the package doc describes.
func (s *Store) Query(device, series string, size time.Duration, from, to int64) ([]Row, error) {
	d, ok := s.dbs[size]
	if !ok {
		return nil, fmt.Errorf("view: no %v windows (configured: %v)", size, s.sizes())
	}
	labels := []tstorage.Label{{Name: "device", Value: device}, {Name: "series", Value: series}}
	rows := map[int64]*Row{}
	end := to + int64(len(Fields))
	if end < to {
		end = math.MaxInt64 // to was near the end of time
	}
	// A lane's older partitions reach at most 2×slack past its newer ones
	// (lanes.go): ask for that much more, so that tstorage's early stop
	// cannot skip one.
	qfrom := from - 2*d.slack - int64(len(Fields))
	if qfrom > from {
		qfrom = math.MinInt64
	}
	unit := ""
	s.reading.RLock()
	defer s.reading.RUnlock()
	s.mu.Lock()
	if info := s.series[device+"\x00"+series]; info != nil {
		unit = info.Unit
	}
	// A generation holds one partition, whose span is exact: only those
	// with a point in [from, end] are read (a lookup of a new window reads
	// the head alone: reading a flushed partition decodes all of it).
	var dbs []tstorage.Storage
	var err error
	for _, l := range d.lanes {
		if dbs, err = l.dbs(dbs, from, end); err != nil {
			break
		}
	}
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if testHookQuery != nil {
		testHookQuery()
	}
	for _, db := range dbs {
		pts, err := db.Select(metric, labels, qfrom, end)
		if err != nil && !errors.Is(err, tstorage.ErrNoDataPoints) {
			return nil, fmt.Errorf("view: query: %w", err)
		}
		for _, p := range pts {
			i := int(p.Timestamp % int64(size))
			start := p.Timestamp - int64(i)
			if i < 0 || i >= len(Fields) || start < from || start >= to {
				continue
			}
			r := rows[start]
			if r == nil {
				r = &Row{Device: device, Series: series, Unit: unit, Size: size, Start: start,
					End: start + int64(size), Values: nanRow()}
				rows[start] = r
			}
			if math.IsNaN(r.Values[i]) || p.Value > r.Values[i] {
				r.Values[i] = p.Value
			}
		}
	}
	s.mu.Lock()
	span := uint64(to-from) / uint64(size) // windows asked for (to-from wraps only past MaxInt64: a huge span)
	if to-from < 0 || uint64(len(s.side)) <= span {
		for k, sr := range s.side {
			if k.device == device && k.series == series && k.size == size && k.start >= from && k.start < to {
				s.mergeInto(rows, sr.Row)
			}
		}
	} else {
		first := from - from%int64(size)
		if first < from {
			first += int64(size)
		}
		for start := first; start < to && start >= first; start += int64(size) {
			if sr, ok := s.side[windowKey{seriesSize{device, series, size}, start}]; ok {
				s.mergeInto(rows, sr.Row)
			}
		}
	}
	s.mu.Unlock()
	out := make([]Row, 0, len(rows))
	for _, r := range rows {
		out = append(out, *r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Start < out[j].Start })
	return out, nil
}

func (s *Store) mergeInto(rows map[int64]*Row, sr Row) {
	if r := rows[sr.Start]; r != nil {
		*r = mergeRow(*r, sr)
	} else {
		sr := mergeRow(Row{}, sr)
		rows[sr.Start] = &sr
	}
}

// mergeRow merges b into a field by field (largest value wins; NaN is
// absent), the same rule Query applies to repeated points.
func mergeRow(a, b Row) Row {
	if a.Values == nil {
		a = b
		a.Values = slices.Clone(b.Values)
		return a
	}
	for i, v := range b.Values {
		if !math.IsNaN(v) && (math.IsNaN(a.Values[i]) || v > a.Values[i]) {
			a.Values[i] = v
		}
	}
	return a
}

func nanRow() []float64 {
	v := make([]float64, len(Fields))
	for i := range v {
		v[i] = math.NaN()
	}
	return v
}

func (s *Store) sizes() []time.Duration {
	var out []time.Duration
	for d := range s.dbs {
		out = append(out, d)
	}
	slices.Sort(out)
	return out
}

// Sync makes everything Put so far durable: every lane's files and
// directories, the side store and the series index. The stream calls it
// before each checkpoint, which then covers only durable windows.
func (s *Store) Sync() error {
	if err := s.release(); err != nil {
		return err
	}
	s.mu.Lock()
	s.pruneSide(time.Now().UnixNano())
	side, sideChanged := s.encodeSide()
	var lanes []*lane
	for _, d := range s.dbs {
		lanes = append(lanes, d.lanes...)
	}
	var list []SeriesInfo
	dirty := s.dirty
	if dirty {
		for _, info := range s.series {
			list = append(list, *info)
		}
		s.dirty = false
	}
	s.mu.Unlock()
	if sideChanged {
		if err := s.writeSide(side); err != nil {
			s.mu.Lock()
			s.sideDirty = true
			s.mu.Unlock()
			return err
		}
	}
	for _, l := range lanes {
		if err := l.sync(); err != nil {
			if dirty { // not written: the next Sync writes it
				s.mu.Lock()
				s.dirty = true
				s.mu.Unlock()
			}
			return err
		}
	}
	if !dirty {
		return nil
	}
	sort.Slice(list, func(i, j int) bool {
		return list[i].Device+"\x00"+list[i].Series < list[j].Device+"\x00"+list[j].Series
	})
	b, err := json.Marshal(list)
	if err != nil {
		return err
	}
	if err := wal.WriteFileAtomic(wal.OSFS{}, filepath.Join(s.dir, seriesFile), b); err != nil {
		s.mu.Lock()
		s.dirty = true
		s.mu.Unlock()
		return fmt.Errorf("view: %w", err)
	}
	return nil
}

// release unmaps the databases retention removed, once no query reads
// them.
func (s *Store) release() error {
	s.reading.Lock()
	defer s.reading.Unlock()
	s.mu.Lock()
	var dbs []tstorage.Storage
	for _, d := range s.dbs {
		for _, l := range d.lanes {
			dbs = append(dbs, l.retired...)
			l.retired = nil
		}
	}
	s.mu.Unlock()
	var errs []error
	for _, db := range dbs {
		if _, err := unmap(db); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Close makes the store durable and closes every database.
func (s *Store) Close() error {
	errs := []error{s.Sync()}
	s.reading.Lock()
	defer s.reading.Unlock()
	for _, d := range s.dbs {
		for _, l := range d.lanes {
			errs = append(errs, l.closeAll())
		}
	}
	return errors.Join(errs...)
}
