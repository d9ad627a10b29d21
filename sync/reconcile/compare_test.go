package reconcile

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/edged-io/edged/aggregate"
)

func points(vs ...float64) []rawPoint {
	pts := make([]rawPoint, len(vs))
	for i, v := range vs {
		pts[i] = rawPoint{Time: int64(i) * 1e9, Value: v, LSN: uint64(10 + i)}
	}
	return pts
}

// rowFor returns the edge row an edge that saw exactly pts would ship.
func rowFor(pts []rawPoint) *edgeRow {
	ex := computeExact(pts)
	f := map[string]float64{"count": float64(ex.Count), "close_lsn": 100, "applied_lsn": 100, "alpha": 0.01,
		"late": 0, "duplicates": 0, "conflicts": 0, "untrusted": 0}
	if ex.Count > 0 {
		f["sum"], f["mean"], f["min"], f["max"] = ex.Sum, ex.Mean, ex.Min, ex.Max
		f["first"], f["last"] = ex.First, ex.Last
		f["p50"], f["p95"], f["p99"] = ex.Quantile(0.5), ex.Quantile(0.95), ex.Quantile(0.99)
	}
	return &edgeRow{windowKey: windowKey{"s", "10s", "v1", 0}, Size: 10 * time.Second, Fields: f}
}

func gapsAt(from, to uint64) gapFinder {
	return func(lo, hi uint64) (gap, bool) {
		if from <= hi && to >= lo {
			return gap{from, to}, true
		}
		return gap{}, false
	}
}

func TestReconcileWindow(t *testing.T) {
	base := points(20.1, 20.4, 19.9, 21.3, 20.0)
	tests := []struct {
		name   string
		edge   []rawPoint // what the edge saw
		exact  []rawPoint // what the store has
		tweak  func(f map[string]float64)
		gaps   gapFinder
		status string
		want   string // in the explanation
		check  func(t *testing.T, r Result)
	}{
		{name: "identical", edge: base, exact: base, status: StatusExact},
		{name: "late reading adds one", edge: base, exact: append(points(20.1, 20.4, 19.9, 21.3, 20.0), rawPoint{Time: 9e9, Value: 30, LSN: 200}),
			tweak: func(f map[string]float64) { f["late"] = 1 }, status: StatusExplained, want: "count +1: late",
			check: func(t *testing.T, r Result) {
				if r.CountDelta != 1 || r.Deltas["max"] != 30-21.3 || math.Abs(r.Deltas["sum"]-30) > 1e-12 {
					t.Errorf("deltas %+v count %d", r.Deltas, r.CountDelta)
				}
			}},
		{name: "more new readings than late", edge: base, exact: append(points(20.1, 20.4, 19.9, 21.3, 20.0), rawPoint{Time: 8e9, Value: 1}, rawPoint{Time: 9e9, Value: 2}),
			tweak: func(f map[string]float64) { f["late"] = 1 }, status: StatusDrift, want: "count +2 but only 1 late"},
		{name: "late overwrote a value", edge: base, exact: points(20.1, 25, 19.9, 21.3, 20.0),
			tweak: func(f map[string]float64) { f["late"] = 1 }, status: StatusExplained, want: "differ: late"},
		{name: "conflict", edge: base, exact: points(20.1, 20.4, 19.9, 21.3, 22.0),
			tweak: func(f map[string]float64) { f["conflicts"] = 1 }, status: StatusExplained, want: "differ: conflicts",
			check: func(t *testing.T, r Result) {
				if r.CountDelta != 0 || r.Deltas["last"] != 2 {
					t.Errorf("deltas %+v", r.Deltas)
				}
			}},
		{name: "duplicates and untrusted change nothing", edge: base, exact: base,
			tweak: func(f map[string]float64) { f["duplicates"], f["untrusted"] = 2, 3 }, status: StatusExact,
			check: func(t *testing.T, r Result) {
				if r.Causes.Duplicates != 2 || r.Causes.Untrusted != 3 {
					t.Errorf("causes %+v", r.Causes)
				}
			}},
		{name: "shortfall within a gap", edge: base, exact: points(20.1, 20.4, 19.9), gaps: gapsAt(50, 60),
			status: StatusExplained, want: "WAL quota dropped LSN 50..60",
			check: func(t *testing.T, r Result) {
				if r.Causes.Dropped != 2 || r.CountDelta != -2 {
					t.Errorf("causes %+v delta %d", r.Causes, r.CountDelta)
				}
			}},
		{name: "shortfall, gap outside the span", edge: base, exact: points(20.1, 20.4, 19.9), gaps: gapsAt(101, 120),
			status: StatusDrift, want: "count -2 with no WAL gap"},
		{name: "tampered count", edge: base, exact: base, tweak: func(f map[string]float64) { f["count"]++ },
			status: StatusDrift, want: "count -1 with no WAL gap"},
		{name: "sum off by one ulp", edge: base, exact: base,
			tweak: func(f map[string]float64) { f["sum"] = math.Nextafter(f["sum"], 1e9) }, status: StatusExact},
		{name: "sum off", edge: base, exact: base, tweak: func(f map[string]float64) { f["sum"] += 1e-9 },
			status: StatusDrift, want: "sum differ with no late"},
		{name: "min off", edge: base, exact: base, tweak: func(f map[string]float64) { f["min"] = 19.8 },
			status: StatusDrift, want: "min differ"},
		{name: "quantile within alpha", edge: base, exact: base, tweak: func(f map[string]float64) { f["p50"] *= 1.009 },
			status: StatusExact, want: "within the sketch bound",
			check: func(t *testing.T, r Result) {
				if r.SketchMaxRelErr < 0.008 || r.SketchMaxRelErr > 0.01 {
					t.Errorf("sketch_max_rel_err %v", r.SketchMaxRelErr)
				}
			}},
		{name: "quantile beyond alpha", edge: base, exact: base, tweak: func(f map[string]float64) { f["p95"] *= 1.02 },
			status: StatusDrift, want: "p95 differ"},
		{name: "amendment-only row", edge: nil, exact: nil, tweak: func(f map[string]float64) {
			delete(f, "count")
			delete(f, "close_lsn")
			f["untrusted"], f["applied_lsn"] = 4, 77.5
		}, status: StatusExact,
			check: func(t *testing.T, r Result) {
				if r.EdgeCloseLSN != 77 || r.Causes.Untrusted != 4 {
					t.Errorf("%+v", r)
				}
			}},
		{name: "window of late readings only", edge: nil, exact: points(3, 4), tweak: func(f map[string]float64) {
			f["late"] = 2
		}, status: StatusExplained, want: "count +2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			row := rowFor(tc.edge)
			if tc.tweak != nil {
				tc.tweak(row.Fields)
			}
			ex := computeExact(tc.exact)
			r := reconcileWindow("d", row, &ex, spanLow(row, &ex), tc.gaps)
			if r.Status != tc.status || !strings.Contains(r.Explanation, tc.want) {
				t.Fatalf("status %q, explanation %q; want %q containing %q", r.Status, r.Explanation, tc.status, tc.want)
			}
			if tc.check != nil {
				tc.check(t, r)
			}
		})
	}
}

func TestSameRecord(t *testing.T) {
	row := rowFor(points(1, 2, 3))
	ex := computeExact(points(1, 2, 3))
	r := reconcileWindow("d", row, &ex, 0, nil)
	r.ReconciledThroughLSN = 100
	fields := recordFields(&r)
	r.ReconciledThroughLSN = 90
	if again := recordFields(&r); !sameRecord(again, fields) {
		t.Fatal("a record differing only in reconciled_through_lsn is not the same")
	}
	other := computeExact(points(1, 2, 3.5))
	r2 := reconcileWindow("d", row, &other, 0, nil)
	if sameRecord(recordFields(&r2), fields) {
		t.Fatal("a record of other values is the same")
	}
	if sameRecord(nil, fields) {
		t.Fatal("no record is the same")
	}
}

func TestPlanChunks(t *testing.T) {
	h := int64(time.Hour)
	c := func(start int64, size time.Duration) candidate {
		return candidate{windowKey: windowKey{Series: "s", Window: aggregate.SizeName(size), Start: start}, Size: size}
	}
	chunks := planChunks([]candidate{
		c(0, time.Hour), c(10*h/3600, 10*time.Second), c(2*h, time.Minute),
		c(10*h, 10*time.Second), c(20*h, 8*time.Hour),
	}, 3*time.Hour)
	if len(chunks) != 3 || len(chunks[0].windows) != 3 || chunks[0].end != 2*h+int64(time.Minute) ||
		chunks[1].start != 10*h || chunks[2].end != 28*h {
		t.Fatalf("chunks %+v", chunks)
	}
}

func TestSizes(t *testing.T) {
	for _, tc := range []struct {
		tag  string
		size time.Duration
	}{{"10s", 10 * time.Second}, {"1m", time.Minute}, {"1h", time.Hour}, {"1h30m", 90 * time.Minute}, {"500ms", 500 * time.Millisecond}} {
		if got := aggregate.SizeName(tc.size); got != tc.tag {
			t.Errorf("aggregate.SizeName(%v) = %q, want %q (the window tag)", tc.size, got, tc.tag)
		}
		if got, err := ParseSize(tc.tag); err != nil || got != tc.size {
			t.Errorf("ParseSize(%q) = %v, %v", tc.tag, got, err)
		}
	}
	if _, err := ParseSize("1m0s"); err != nil {
		t.Error("ParseSize refuses Go's own format")
	}
	for _, bad := range []string{"", "0s", "-1m", "x"} {
		if _, err := ParseSize(bad); err == nil {
			t.Errorf("ParseSize(%q) accepted", bad)
		}
	}
	if q, ok := parseQuantileField("p99.9"); !ok || math.Abs(q-0.999) > 1e-15 {
		t.Errorf("p99.9 → %v %v", q, ok)
	}
	for _, name := range []string{"p", "pa", "sum", "p101"} {
		if _, ok := parseQuantileField(name); ok {
			t.Errorf("%q taken for a quantile field", name)
		}
	}
}
