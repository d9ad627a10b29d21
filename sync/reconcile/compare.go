package reconcile

import (
	"fmt"
	"math"
	"strings"
)

// Status of a reconciled window.
const (
	// StatusExact: the edge estimate equals the exact aggregates: count,
	// min, max, first and last exactly, sum and mean within SumULPs, every
	// quantile within the sketch's bound.
	StatusExact = "exact"
	// StatusExplained: some aggregate differs, and every difference is
	// explained by a counted cause (late readings, conflicts, WAL drops).
	StatusExplained = "explained"
	// StatusDrift: a difference no counted cause explains.
	StatusDrift = "drift"
)

// SumULPs is the tolerance for sum and mean when no cause applies, in
// units in the last place of the larger magnitude. Both sides compute the
// correctly rounded sum of the same values, so they should agree to the
// bit; the slack only absorbs a lossy float format somewhere on the way.
const SumULPs = 4

// Causes count the readings behind the differences of one window.
type Causes struct {
	// Late, Duplicates, Conflicts and Untrusted are the edge's counts for
	// the window (Untrusted includes the invalid, NaN or ±Inf, values),
	// cumulative over its emission and amendments.
	Late       uint64 `json:"late"`
	Duplicates uint64 `json:"duplicates"`
	Conflicts  uint64 `json:"conflicts"`
	Untrusted  uint64 `json:"untrusted"`
	// Dropped is the number of readings the edge folded in that are
	// missing centrally, attributed to a WAL quota gap (edged_gap) whose
	// LSN range overlaps the window's: at least the count shortfall.
	Dropped uint64 `json:"dropped"`
}

func (c *Causes) add(o Causes) {
	c.Late += o.Late
	c.Duplicates += o.Duplicates
	c.Conflicts += o.Conflicts
	c.Untrusted += o.Untrusted
	c.Dropped += o.Dropped
}

// Result is the reconciliation of one window.
type Result struct {
	Device string `json:"device"`
	Series string `json:"series"`
	Window string `json:"window"`
	View   string `json:"view"`
	Start  int64  `json:"start"` // ns since the epoch
	End    int64  `json:"end"`

	Status      string `json:"status"`
	Explanation string `json:"explanation"`

	EdgeCount  uint64 `json:"edge_count"`
	ExactCount uint64 `json:"exact_count"`
	CountDelta int64  `json:"count_delta"` // exact − edge
	// Deltas are exact − edge for sum, mean, min, max, first, last and
	// each quantile field the edge row has (p50, p95, p99), present when
	// both sides have the value.
	Deltas map[string]float64 `json:"deltas,omitempty"`
	Causes Causes             `json:"causes"`
	// SketchMaxRelErr is the largest |estimate − exact| / |exact| over the
	// quantiles (1 when the exact quantile is 0 and the estimate is not);
	// Alpha the sketch's bound, from the edge row.
	SketchMaxRelErr float64 `json:"sketch_max_rel_err"`
	Alpha           float64 `json:"alpha,omitempty"`

	EdgeCloseLSN         uint64  `json:"edge_close_lsn"`
	EdgeAppliedLSN       float64 `json:"edge_applied_lsn"`
	ReconciledThroughLSN uint64  `json:"reconciled_through_lsn"`
	ExactMaxLSN          uint64  `json:"exact_max_lsn"`
	Digest               string  `json:"digest"`
	Unit                 string  `json:"unit,omitempty"`

	exact *exact
	row   *edgeRow
}

// gapFinder returns a WAL gap that overlaps the LSN span [lo, hi] of a
// window, if there is one.
type gapFinder func(lo, hi uint64) (gap, bool)

// reconcileWindow compares the edge row with the exact aggregates of the
// window's raw points and attributes every difference to a cause (see the
// package documentation, "Attribution"). spanLo is a lower bound of the
// LSNs at which the edge may have folded readings into the window; gaps
// says whether a WAL gap overlaps an LSN range.
func reconcileWindow(device string, row *edgeRow, ex *exact, spanLo uint64, gaps gapFinder) Result {
	r := Result{
		Device: device, Series: row.Series, Window: row.Window, View: row.View,
		Start: row.Start, End: row.End(),
		EdgeCount: row.count("count"), ExactCount: ex.Count,
		Causes: Causes{
			Late:       row.count("late"),
			Duplicates: row.count("duplicates"),
			Conflicts:  row.count("conflicts"),
			Untrusted:  row.count("untrusted"),
		},
		Alpha:          row.get("alpha"),
		EdgeCloseLSN:   row.closeLSN(),
		EdgeAppliedLSN: row.appliedLSN(),
		ExactMaxLSN:    ex.MaxLSN,
		Digest:         ex.Digest,
		Unit:           row.Unit,
		exact:          ex,
		row:            row,
	}
	if math.IsNaN(r.Alpha) {
		r.Alpha = 0
	}
	r.CountDelta = int64(r.ExactCount) - int64(r.EdgeCount)

	var unexplained, explained []string
	late := r.Causes.Late
	d := r.CountDelta
	switch {
	case d > 0 && uint64(d) > late:
		unexplained = append(unexplained, fmt.Sprintf("count %+d but only %d late", d, late))
	case d > 0:
		explained = append(explained, fmt.Sprintf("count %+d: late readings the edge refused", d))
	case d < 0:
		// The edge folded in readings the store does not have: only a
		// WAL gap can remove shipped-to-be readings.
		if g, ok := findGap(gaps, spanLo, r.EdgeCloseLSN); ok {
			r.Causes.Dropped = uint64(-d)
			explained = append(explained, fmt.Sprintf("count %+d: the WAL quota dropped LSN %d..%d before shipping", d, g.From, g.To))
		} else {
			unexplained = append(unexplained, fmt.Sprintf("count %+d with no WAL gap in LSN %d..%d", d, spanLo, r.EdgeCloseLSN))
		}
	}

	// Which causes may change the values: late readings (the edge never
	// saw them; a late reading may also overwrite an accepted identity),
	// conflicts (the edge keeps the first value, InfluxDB the last), and
	// readings dropped before shipping.
	var valueCauses []string
	if late > 0 {
		valueCauses = append(valueCauses, "late")
	}
	if r.Causes.Conflicts > 0 {
		valueCauses = append(valueCauses, "conflicts")
	}
	if r.Causes.Dropped > 0 {
		valueCauses = append(valueCauses, "dropped")
	}

	r.Deltas = map[string]float64{}
	var differ []string
	check := func(name string, edge, exactV float64, same func(a, b float64) bool) {
		haveEdge := r.EdgeCount > 0 && !math.IsNaN(edge)
		haveExact := r.ExactCount > 0 && !math.IsNaN(exactV)
		switch {
		case haveEdge && haveExact:
			if d := exactV - edge; !math.IsInf(d, 0) {
				r.Deltas[name] = d
			}
			if !same(edge, exactV) {
				differ = append(differ, name)
			}
		case haveEdge != haveExact:
			differ = append(differ, name)
		}
	}
	check("sum", row.get("sum"), ex.Sum, ulpClose)
	check("mean", row.get("mean"), ex.Mean, ulpClose)
	check("min", row.get("min"), ex.Min, equal)
	check("max", row.get("max"), ex.Max, equal)
	check("first", row.get("first"), ex.First, equal)
	check("last", row.get("last"), ex.Last, equal)
	for _, qf := range row.quantiles() {
		x := ex.Quantile(qf.Q)
		est := row.get(qf.Name)
		check(qf.Name, est, x, func(est, x float64) bool {
			return withinSketchBound(est, x, r.Alpha, ex)
		})
		if !math.IsNaN(x) && r.EdgeCount > 0 && !math.IsNaN(est) {
			r.SketchMaxRelErr = max(r.SketchMaxRelErr, relErr(est, x))
		}
	}
	if len(r.Deltas) == 0 {
		r.Deltas = nil
	}
	if len(differ) > 0 {
		if len(valueCauses) == 0 {
			unexplained = append(unexplained, strings.Join(differ, ", ")+" differ with no late reading, conflict or drop")
		} else {
			explained = append(explained, strings.Join(differ, ", ")+" differ: "+strings.Join(valueCauses, ", "))
		}
	}

	switch {
	case len(unexplained) > 0:
		r.Status = StatusDrift
		r.Explanation = "unexplained: " + strings.Join(unexplained, "; ")
		if len(explained) > 0 {
			r.Explanation += "; explained: " + strings.Join(explained, "; ")
		}
	case len(explained) > 0:
		r.Status = StatusExplained
		r.Explanation = strings.Join(explained, "; ")
	default:
		r.Status = StatusExact
		r.Explanation = "exact"
		if r.SketchMaxRelErr > 0 {
			r.Explanation = fmt.Sprintf("exact; quantiles within the sketch bound (max rel. err %.3g ≤ α %g)", r.SketchMaxRelErr, r.Alpha)
		}
	}
	return r
}

func findGap(gaps gapFinder, lo, hi uint64) (gap, bool) {
	if gaps == nil {
		return gap{}, false
	}
	return gaps(lo, hi)
}

// equal compares exactly, −0 equal to +0.
func equal(a, b float64) bool { return a == b }

// ulpClose reports whether a and b are within SumULPs units in the last
// place of the larger magnitude.
func ulpClose(a, b float64) bool {
	if a == b {
		return true
	}
	m := max(math.Abs(a), math.Abs(b))
	ulp := math.Nextafter(m, math.Inf(1)) - m
	return math.Abs(a-b) <= SumULPs*ulp
}

// withinSketchBound reports whether est is within the sketch's bound of the
// exact quantile x: |est − x| ≤ α·|x|, plus a few ulps of rounding in the
// bucket's representative and 2^-1074 for subnormals. The edge does not
// ship its Collapsed flag, so when the values of x's sign span more than
// 2^50 in magnitude (the sketch may have folded the smallest) the
// collapsed bound, largest magnitude · 2^-50, is allowed too.
func withinSketchBound(est, x, alpha float64, ex *exact) bool {
	if est == x {
		return true
	}
	tol := alpha*math.Abs(x)*(1+1e-9) + 8*ulpOf(x) + math.SmallestNonzeroFloat64
	if ratio, largest := ex.magnitudeSpan(x); ratio > 1<<50 {
		tol = max(tol, largest*math.Pow(2, -50))
	}
	return math.Abs(est-x) <= tol
}

func ulpOf(x float64) float64 {
	m := math.Abs(x)
	return math.Nextafter(m, math.Inf(1)) - m
}

func relErr(est, x float64) float64 {
	switch {
	case est == x:
		return 0
	case x == 0:
		return 1
	}
	return min(math.Abs(est-x)/math.Abs(x), math.MaxFloat64)
}
