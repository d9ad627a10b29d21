package reconcile

import (
	"context"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Sources of a served row.
const (
	SourceBatch = "batch" // exact, from edged_batch
	SourceEdge  = "edge"  // the edge estimate, from edged_window
)

// QueryRequest selects the windows of one series and size whose start is
// in [From, To).
type QueryRequest struct {
	Device, Series string
	Window         time.Duration
	// View is the edge view tag; default "v1".
	View     string
	From, To time.Time
}

// ServedRow is one window of the merged view: the exact aggregates where
// the batch view has the window, the edge estimate otherwise.
type ServedRow struct {
	Start  time.Time `json:"start"`
	End    time.Time `json:"end"`
	Source string    `json:"source"`
	// Status is the reconciliation status (exact, explained, drift) of a
	// batch row; empty for an edge row.
	Status string  `json:"status,omitempty"`
	Count  float64 `json:"count"`
	// Values holds sum, mean, min, max, first, last and the quantiles
	// (p50, p95, p99) that the source has.
	Values map[string]float64 `json:"values"`
	Unit   string             `json:"unit,omitempty"`
}

// servedFields are the aggregate fields a served row carries.
func servedField(name string) bool {
	switch name {
	case "sum", "mean", "min", "max", "first", "last":
		return true
	}
	_, ok := parseQuantileField(name)
	return ok
}

// Query serves the merged view of one series (SPEC: the serving layer).
func (j *Job) Query(ctx context.Context, q QueryRequest) ([]ServedRow, error) {
	if q.Device == "" || q.Series == "" || q.Window <= 0 || !q.From.Before(q.To) {
		return nil, fmt.Errorf("%w: query needs a device, a series, a window size and from < to", ErrOptions)
	}
	if q.View == "" {
		q.View = "v1"
	}
	flux := fmt.Sprintf(`from(bucket: %s)
  |> range(start: %s, stop: %s)
  |> filter(fn: (r) => r.device == %s and r.series == %s and r.view == %s and
       (r._measurement == %q or r._measurement == %q or (r._measurement == %q and r._field == "status")))
  |> keep(columns: ["_time", "_value", "_field", "_measurement", "window"])`,
		fluxString(j.o.Bucket), fluxTime(q.From.UnixNano()), fluxTime(q.To.UnixNano()),
		fluxString(q.Device), fluxString(q.Series), fluxString(q.View), mWindow, mBatch, mRecord)
	type entry struct {
		edge, batch map[string]any
		status      string
	}
	byStart := map[int64]*entry{}
	err := j.st.each(ctx, "query "+q.Device+" "+q.Series, flux, func(r recordView) error {
		if size, err := ParseSize(r.str("window")); err != nil || size != q.Window {
			return nil
		}
		t := r.time()
		if t >= q.To.UnixNano() {
			return nil // InfluxDB 1.8 includes range's stop
		}
		e := byStart[t]
		if e == nil {
			e = &entry{}
			byStart[t] = e
		}
		field := r.str("_field")
		switch r.str("_measurement") {
		case mWindow:
			if e.edge == nil {
				e.edge = map[string]any{}
			}
			e.edge[field] = r.value()
		case mBatch:
			if e.batch == nil {
				e.batch = map[string]any{}
			}
			e.batch[field] = r.value()
		case mRecord:
			e.status, _ = r.value().(string)
		}
		return nil
	}, func() { clear(byStart) })
	if err != nil {
		return nil, err
	}
	starts := make([]int64, 0, len(byStart))
	for t := range byStart {
		starts = append(starts, t)
	}
	slices.Sort(starts)
	rows := make([]ServedRow, 0, len(starts))
	for _, t := range starts {
		e := byStart[t]
		src, fields := SourceBatch, e.batch
		if fields == nil {
			src, fields = SourceEdge, e.edge
		}
		if fields == nil {
			continue // a reconciliation record alone
		}
		row := ServedRow{Start: time.Unix(0, t).UTC(), End: time.Unix(0, t+int64(q.Window)).UTC(),
			Source: src, Values: map[string]float64{}, Count: math.NaN()}
		if src == SourceBatch {
			row.Status = e.status
		}
		for name, v := range fields {
			switch {
			case name == "count":
				row.Count, _ = number(v)
			case name == "unit":
				row.Unit, _ = v.(string)
			case servedField(name):
				if f, ok := number(v); ok {
					row.Values[name] = f
				}
			}
		}
		if math.IsNaN(row.Count) {
			row.Count = 0
		}
		rows = append(rows, row)
	}
	return rows, nil
}

// WriteRows writes served rows as a table.
func WriteRows(w io.Writer, rows []ServedRow) error {
	cols := []string{"sum", "mean", "min", "max", "first", "last"}
	var qs []string
	seen := map[string]bool{}
	for _, r := range rows {
		for name := range r.Values {
			if _, ok := parseQuantileField(name); ok && !seen[name] {
				seen[name] = true
				qs = append(qs, name)
			}
		}
	}
	slices.SortFunc(qs, func(a, b string) int {
		x, _ := parseQuantileField(a)
		y, _ := parseQuantileField(b)
		return int(math.Copysign(1, x-y))
	})
	cols = append(cols, qs...)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "START\tEND\tSOURCE\tSTATUS\tCOUNT\t%s\n", strings.ToUpper(strings.Join(cols, "\t")))
	for _, r := range rows {
		status := r.Status
		if status == "" {
			status = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%g", r.Start.Format(time.RFC3339Nano), r.End.Format(time.RFC3339Nano), r.Source, status, r.Count)
		for _, c := range cols {
			if v, ok := r.Values[c]; ok {
				fmt.Fprintf(tw, "\t%.6g", v)
			} else {
				fmt.Fprint(tw, "\t-")
			}
		}
		fmt.Fprintln(tw)
	}
	return tw.Flush()
}
