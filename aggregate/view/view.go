// Package view is the local view store: closed windows kept in tstorage so
// that the HTTP API can answer "series S, window size W, from T1 to T2"
// without the central store.
//
// # Layout and idempotence
//
// Each window size has its own tstorage database under DIR/<size> (windows
// of one size close in time order, which tstorage needs: it drops points
// older than its two writable partitions). A series is one tstorage metric
// per size, labelled with device and series; a window is one point per field
// (count, sum, min, …) at its start time plus the field's index in ns —
// windows are aligned to their size, so start and field are recovered
// exactly. One metric per series and size, not per field, matters: tstorage
// allocates 1,000 point slots (8 KiB) per metric and in-memory partition.
//
// tstorage does not return points written out of time order until their
// partition is flushed to disk, and a window rewritten by an amendment is
// such a point; the store also keeps those rewrites in memory (a map keyed
// by window, so it holds only amended windows) and merges them into queries.
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

// Store holds the windows.
type Store struct {
	dir string

	mu     sync.Mutex
	dbs    map[time.Duration]tstorage.Storage
	series map[string]*SeriesInfo // device + "\x00" + series
	dirty  bool
	// tstorage does not return points written out of time order until
	// their partition is flushed to disk, so rewrites of older windows
	// (amendments) are also kept here and merged into queries.
	latest  map[seriesSize]int64 // latest window start written
	rewrite map[windowKey]Row
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
// Retention keeps each size's windows for at least keep.
func Open(dir string, sizes []time.Duration, keep time.Duration) (*Store, error) {
	s := &Store{dir: dir, dbs: map[time.Duration]tstorage.Storage{}, series: map[string]*SeriesInfo{},
		latest: map[seriesSize]int64{}, rewrite: map[windowKey]Row{}}
	for _, size := range sizes {
		part := max(time.Hour, 24*size)
		db, err := tstorage.NewStorage(
			tstorage.WithDataPath(filepath.Join(dir, size.String())),
			tstorage.WithPartitionDuration(part),
			tstorage.WithRetention(max(keep, 2*part)),
			tstorage.WithTimestampPrecision(tstorage.Nanoseconds),
			tstorage.WithWALBufferedSize(0), // every write reaches the OS: a kill -9 loses nothing
		)
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("view: open %s windows: %w", size, err)
		}
		s.dbs[size] = db
	}
	if b, err := os.ReadFile(filepath.Join(dir, "series.json")); err == nil {
		var list []SeriesInfo
		if err := json.Unmarshal(b, &list); err != nil {
			return nil, fmt.Errorf("view: %s: %w", filepath.Join(dir, "series.json"), err)
		}
		for i := range list {
			s.series[list[i].Device+"\x00"+list[i].Series] = &list[i]
		}
	}
	return s, nil
}

// Put stores windows. Rows of a size the store was not opened with are an
// error.
func (s *Store) Put(rows []Row) error {
	for _, r := range rows {
		if _, ok := s.dbs[r.Size]; !ok || r.Start%int64(r.Size) != 0 {
			return fmt.Errorf("view: no store for %v windows (configured: %v)", r.Size, s.sizes())
		}
	}
	bySize := map[time.Duration][]tstorage.Row{}
	// A window's fields are points at start+i ns; its size must leave room.
	s.mu.Lock()
	for _, r := range rows {
		labels := []tstorage.Label{{Name: "device", Value: r.Device}, {Name: "series", Value: r.Series}}
		ss := seriesSize{r.Device, r.Series, r.Size}
		if latest, ok := s.latest[ss]; ok && r.Start <= latest {
			k := windowKey{ss, r.Start}
			s.rewrite[k] = mergeRow(s.rewrite[k], r)
		} else {
			s.latest[ss] = r.Start
		}
		for i, v := range r.Values {
			if math.IsNaN(v) {
				continue
			}
			bySize[r.Size] = append(bySize[r.Size], tstorage.Row{Metric: metric, Labels: labels,
				DataPoint: tstorage.DataPoint{Timestamp: r.Start + int64(i), Value: v}})
		}
		s.note(r)
	}
	s.mu.Unlock()
	for size, trs := range bySize {
		if err := s.dbs[size].InsertRows(trs); err != nil {
			return fmt.Errorf("view: store %v windows: %w", size, err)
		}
	}
	return nil
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
	db, ok := s.dbs[size]
	if !ok {
		return nil, fmt.Errorf("view: no %v windows (configured: %v)", size, s.sizes())
	}
	labels := []tstorage.Label{{Name: "device", Value: device}, {Name: "series", Value: series}}
	rows := map[int64]*Row{}
	unit := ""
	s.mu.Lock()
	if info := s.series[device+"\x00"+series]; info != nil {
		unit = info.Unit
	}
	s.mu.Unlock()
	end := to + int64(len(Fields))
	if end < to {
		end = math.MaxInt64 // to was near the end of time
	}
	pts, err := db.Select(metric, labels, from, end)
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
	s.mu.Lock()
	for k, rw := range s.rewrite {
		if k.device != device || k.series != series || k.size != size || k.start < from || k.start >= to {
			continue
		}
		if r := rows[k.start]; r != nil {
			*r = mergeRow(*r, rw)
		} else {
			rw := mergeRow(Row{}, rw)
			rows[k.start] = &rw
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

// Sync persists the series index (atomically and durably) if it changed.
func (s *Store) Sync() error {
	s.mu.Lock()
	if !s.dirty {
		s.mu.Unlock()
		return nil
	}
	list := make([]SeriesInfo, 0, len(s.series))
	for _, info := range s.series {
		list = append(list, *info)
	}
	s.dirty = false
	s.mu.Unlock()
	b, err := json.Marshal(list)
	if err != nil {
		return err
	}
	if err := wal.WriteFileAtomic(wal.OSFS{}, filepath.Join(s.dir, "series.json"), b); err != nil {
		return fmt.Errorf("view: %w", err)
	}
	return nil
}

// Close flushes and closes every database.
func (s *Store) Close() error {
	errs := []error{s.Sync()}
	for _, db := range s.dbs {
		errs = append(errs, db.Close())
	}
	return errors.Join(errs...)
}
