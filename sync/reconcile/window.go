package reconcile

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"
)

// windowKey identifies a window of one device in the central store: the
// tags of edged_window (series, window, view) and its start.
type windowKey struct {
	Series, Window, View string
	Start                int64
}

func compareKeys(a, b windowKey) int {
	return cmp.Or(cmp.Compare(a.Series, b.Series), cmp.Compare(a.View, b.View),
		cmp.Compare(a.Window, b.Window), cmp.Compare(a.Start, b.Start))
}

// edgeRow is one edged_window point: the edge's estimate of a window with
// its cumulative accounting. Absent numeric fields are NaN.
type edgeRow struct {
	windowKey
	Size time.Duration
	// Fields holds every numeric field by name (count, sum, p95, late,
	// close_lsn, applied_lsn, alpha, …).
	Fields map[string]float64
	Unit   string
}

// End is the window's end, from its start and the size in its tag (the
// float end field cannot hold every nanosecond timestamp exactly).
func (r *edgeRow) End() int64 { return r.Start + int64(r.Size) }

func (r *edgeRow) get(name string) float64 {
	if v, ok := r.Fields[name]; ok {
		return v
	}
	return math.NaN()
}

// count returns a non-negative integer field, 0 when absent.
func (r *edgeRow) count(name string) uint64 {
	v := r.get(name)
	if !(v > 0) {
		return 0
	}
	return uint64(v)
}

// appliedLSN is the mark of the latest edge event folded into the row
// (LSN, or LSN + ½ for an amendment).
func (r *edgeRow) appliedLSN() float64 {
	if v := r.get("applied_lsn"); !math.IsNaN(v) {
		return v
	}
	return r.get("close_lsn")
}

// closeLSN is the LSN at which the edge closed the window; for a row made
// of amendments only (the edge never opened the window), the LSN of its
// latest amendment.
func (r *edgeRow) closeLSN() uint64 {
	if v := r.get("close_lsn"); v >= 0 {
		return uint64(v)
	}
	if v := r.appliedLSN(); v >= 0 {
		return uint64(v)
	}
	return 0
}

// quantileField is an edge quantile field such as p95 and its q (0.95).
type quantileField struct {
	Name string
	Q    float64
}

// quantiles lists the row's quantile fields in ascending order of q.
func (r *edgeRow) quantiles() []quantileField {
	var qs []quantileField
	for name, v := range r.Fields {
		if q, ok := parseQuantileField(name); ok && !math.IsNaN(v) {
			qs = append(qs, quantileField{name, q})
		}
	}
	slices.SortFunc(qs, func(a, b quantileField) int { return cmp.Compare(a.Q, b.Q) })
	return qs
}

// parseQuantileField recognises "p50", "p99.9": the q-quantile for q =
// the number / 100.
func parseQuantileField(name string) (float64, bool) {
	if len(name) < 2 || name[0] != 'p' || name[1] < '0' || name[1] > '9' {
		return 0, false
	}
	p, err := strconv.ParseFloat(name[1:], 64)
	if err != nil || p < 0 || p > 100 {
		return 0, false
	}
	return p / 100, true
}

// ParseSize parses a window tag: "10s", "1m", "1h", or Go's "1m0s".
func ParseSize(tag string) (time.Duration, error) {
	d, err := time.ParseDuration(tag)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("reconcile: window %q is not a positive duration", tag)
	}
	return d, nil
}
