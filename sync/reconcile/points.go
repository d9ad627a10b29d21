package reconcile

import (
	"fmt"
	"hash/fnv"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/influxdata/influxdb-client-go/v2/api/write"
)

// windowTags are the tags of edged_window; an empty one (a row shipped
// without a view) is left out, as InfluxDB stores it.
func windowTags(r *Result) map[string]string {
	tags := map[string]string{}
	for k, v := range map[string]string{"device": r.Device, "series": r.Series, "window": r.Window, "view": r.View} {
		if v != "" {
			tags[k] = v
		}
	}
	return tags
}

// batchFields are the edged_batch fields of a result: the exact
// aggregates, with the quantiles the edge row has.
func batchFields(r *Result) map[string]any {
	ex := r.exact
	f := map[string]any{"count": float64(ex.Count), "end": r.End}
	if r.Unit != "" {
		f["unit"] = r.Unit
	}
	if ex.Count == 0 {
		return f
	}
	put := func(name string, v float64) {
		if !math.IsNaN(v) && !math.IsInf(v, 0) {
			f[name] = v
		}
	}
	put("sum", ex.Sum)
	put("mean", ex.Mean)
	put("min", ex.Min)
	put("max", ex.Max)
	put("first", ex.First)
	put("last", ex.Last)
	for _, q := range r.row.quantiles() {
		put(q.Name, ex.Quantile(q.Q))
	}
	return f
}

// recordFields are the edged_reconciliation fields of a result.
func recordFields(r *Result) map[string]any {
	f := map[string]any{
		"status":                 r.Status,
		"explanation":            r.Explanation,
		"edge_count":             int64(r.EdgeCount),
		"exact_count":            int64(r.ExactCount),
		"count_delta":            r.CountDelta,
		"late":                   int64(r.Causes.Late),
		"duplicates":             int64(r.Causes.Duplicates),
		"conflicts":              int64(r.Causes.Conflicts),
		"untrusted":              int64(r.Causes.Untrusted),
		"dropped":                int64(r.Causes.Dropped),
		"sketch_max_rel_err":     r.SketchMaxRelErr,
		"alpha":                  r.Alpha,
		"edge_close_lsn":         int64(r.EdgeCloseLSN),
		"edge_applied_lsn":       r.EdgeAppliedLSN,
		"exact_max_lsn":          int64(r.ExactMaxLSN),
		"digest":                 r.Digest,
		"end":                    r.End,
		"reconciled_through_lsn": int64(r.ReconciledThroughLSN),
	}
	for name, d := range r.Deltas {
		if !math.IsNaN(d) && !math.IsInf(d, 0) {
			f[name+"_delta"] = d
		}
	}
	f["content"] = contentHash(f)
	return f
}

// volatileFields change on every run without the reconciliation changing.
var volatileFields = map[string]bool{"reconciled_through_lsn": true, "content": true}

// contentHash digests every field of a record but the volatile ones, in
// name order: the "content" field. Comparing it tells whether the stored
// record already says what a new one says, reading one field per window.
func contentHash(fields map[string]any) string {
	names := make([]string, 0, len(fields))
	for name := range fields {
		if !volatileFields[name] {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	h := fnv.New64a()
	for _, name := range names {
		fmt.Fprintf(h, "%s=%v;", name, fields[name])
	}
	return strconv.FormatUint(h.Sum64(), 16)
}

// sameRecord reports whether the stored record old (its content field)
// already says what the new fields say, ignoring the through LSN the run
// used: then neither the record nor the batch row (a function of the same
// raw points, see digest) needs writing.
func sameRecord(old map[string]any, fields map[string]any) bool {
	c, ok := old["content"].(string)
	return ok && c == fields["content"]
}

func resultPoints(r *Result) []*write.Point {
	t := time.Unix(0, r.Start)
	tags := windowTags(r)
	return []*write.Point{
		write.NewPoint(mBatch, tags, batchFields(r), t),
		write.NewPoint(mRecord, tags, recordFields(r), t),
	}
}

// markerPoint records that the job finished a device through an LSN.
func markerPoint(device string, through uint64, now time.Time) *write.Point {
	return write.NewPoint(mJobMarker, map[string]string{"device": device},
		map[string]any{"through_lsn": int64(through), "updated": now.UnixNano()}, time.Unix(0, 0))
}
