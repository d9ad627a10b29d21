package reconcile

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"slices"
	"strings"
	"syscall"
	"time"

	influxdb2 "github.com/influxdata/influxdb-client-go/v2"
	"github.com/influxdata/influxdb-client-go/v2/api"
	influxhttp "github.com/influxdata/influxdb-client-go/v2/api/http"
	"github.com/influxdata/influxdb-client-go/v2/api/write"
)

// Measurements read and written. See the package documentation.
const (
	mReading   = "edged_reading"
	mWindow    = "edged_window"
	mGap       = "edged_gap"
	mProgress  = "edged_progress"
	mBatch     = "edged_batch"
	mRecord    = "edged_reconciliation"
	mJobMarker = "edged_reconcile_progress"
)

// The time range every query spans unless it knows better: the edge's hard
// range of event times (aggregate: years 1900 to 2200). Progress points are
// at time 0 and gap points at their LSN as nanoseconds, inside it.
var (
	timeMin = time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	timeMax = time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()
)

// StoreError reports that the central store could not be reached or a
// query or write failed. The job's exit code for it is ExitStore.
type StoreError struct {
	Op  string // "query progress", "write", …
	Err error
}

func (e *StoreError) Error() string { return "reconcile: " + e.Op + ": " + e.Err.Error() }
func (e *StoreError) Unwrap() error { return e.Err }

// store talks to InfluxDB through the v2 API (InfluxDB 2.x, or 1.8+ with
// flux-enabled). It is safe for concurrent use.
type store struct {
	client influxdb2.Client
	query  api.QueryAPI
	write  api.WriteAPIBlocking
	bucket string
	log    *slog.Logger
}

func openStore(o *Options) *store {
	opts := influxdb2.DefaultOptions().
		SetHTTPRequestTimeout(uint(max(o.HTTPTimeout/time.Second, 1))).
		SetMaxRetries(0).
		SetUseGZip(true).
		SetLogLevel(0).
		SetPrecision(time.Nanosecond)
	c := influxdb2.NewClientWithOptions(o.URL, o.Token, opts)
	return &store{client: c, query: c.QueryAPI(o.Org), write: c.WriteAPIBlocking(o.Org, o.Bucket), bucket: o.Bucket, log: o.Logger}
}

func (s *store) Close() { s.client.Close() }

// fluxString quotes s as a Flux string literal.
func fluxString(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "${", `\${`, "\n", `\n`, "\r", `\r`, "\t", `\t`)
	return `"` + r.Replace(s) + `"`
}

// fluxTime formats ns since the epoch as a Flux time literal.
//
// InfluxDB 1.8 treats range's stop as inclusive where Flux says exclusive
// (influxdata/influxdb#19966): queries that need an exclusive bound also
// test _time.
func fluxTime(ns int64) string { return time.Unix(0, ns).UTC().Format(time.RFC3339Nano) }

// each runs a Flux query and calls fn for every record. A query that fails
// in a way worth retrying is run again (see retry), after calling reset,
// which must undo what fn has accumulated.
func (s *store) each(ctx context.Context, op, flux string, fn func(r recordView) error, reset func()) error {
	first := true
	return s.retry(ctx, op, func() error {
		if !first && reset != nil {
			reset()
		}
		first = false
		return s.eachOnce(ctx, op, flux, fn)
	})
}

// retry runs f up to three times while it fails in a way worth retrying
// (no response, a response cut short, 5xx, 429): every request of the job
// is idempotent.
func (s *store) retry(ctx context.Context, op string, f func() error) error {
	var err error
	for attempt := range 3 {
		if attempt > 0 {
			s.log.Warn("reconcile: retrying", "op", op, "attempt", attempt, "err", err)
			select {
			case <-ctx.Done():
				return s.fail(ctx, op, err)
			case <-time.After(time.Duration(attempt) * 250 * time.Millisecond):
			}
		}
		if err = f(); err == nil || !transient(err) || ctx.Err() != nil {
			return err
		}
	}
	return err
}

// transient reports a store error that may go away when retried.
func transient(err error) bool {
	var se *StoreError
	if !errors.As(err, &se) {
		return false
	}
	var he *influxhttp.Error
	if errors.As(se.Err, &he) && he.StatusCode != 0 {
		return he.StatusCode >= 500 || he.StatusCode == http.StatusTooManyRequests
	}
	// No response, or a response cut short (seen once from InfluxDB 1.8
	// under load: a gzip body ending early).
	var ne net.Error
	return errors.Is(se.Err, io.ErrUnexpectedEOF) || errors.Is(se.Err, io.EOF) || errors.As(se.Err, &ne) ||
		errors.Is(se.Err, syscall.ECONNRESET) || errors.Is(se.Err, syscall.ECONNREFUSED)
}

func (s *store) eachOnce(ctx context.Context, op, flux string, fn func(r recordView) error) error {
	res, err := s.query.Query(ctx, flux)
	if err != nil {
		return s.fail(ctx, op, err)
	}
	defer res.Close()
	for res.Next() {
		if err := fn(recordView{res.Record().Values()}); err != nil {
			return err
		}
	}
	if err := res.Err(); err != nil {
		return s.fail(ctx, op, err)
	}
	return nil
}

// fail classifies a failed request: the context's error when the job was
// stopped (not the store's fault), else a *StoreError.
func (s *store) fail(ctx context.Context, op string, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%s: %w", op, context.Cause(ctx))
	}
	return &StoreError{op, err}
}

// recordView reads the columns of a Flux record.
type recordView struct{ v map[string]any }

func (r recordView) str(col string) string {
	s, _ := r.v[col].(string)
	return s
}

func (r recordView) time() int64 {
	t, _ := r.v["_time"].(time.Time)
	return t.UnixNano()
}

func (r recordView) value() any { return r.v["_value"] }

// number converts an int, uint or float field value to float64; ok is
// false for other types.
func number(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case int64:
		return float64(x), true
	case uint64:
		return float64(x), true
	}
	return math.NaN(), false
}

// devicePosition is what the store knows of a device's progress.
type devicePosition struct {
	// Through is edged_progress.through_lsn: every reading and window row
	// for records ≤ it is in the store.
	Through    uint64
	HasThrough bool
	// Marker is the through LSN up to which the previous runs finished
	// (edged_reconcile_progress.through_lsn); HasMarker false before the
	// first complete run.
	Marker    uint64
	HasMarker bool
}

// positions reads every device's shipping progress and the job's marker.
func (s *store) positions(ctx context.Context) (map[string]*devicePosition, error) {
	flux := fmt.Sprintf(`from(bucket: %s)
  |> range(start: %s, stop: %s)
  |> filter(fn: (r) => (r._measurement == %q or r._measurement == %q) and r._field == "through_lsn")
  |> keep(columns: ["_measurement", "device", "_value"])`,
		fluxString(s.bucket), fluxTime(timeMin), fluxTime(timeMax), mProgress, mJobMarker)
	out := map[string]*devicePosition{}
	err := s.each(ctx, "query progress", flux, func(r recordView) error {
		dev := r.str("device")
		v, ok := number(r.value())
		if dev == "" || !ok || v < 0 {
			return nil
		}
		p := out[dev]
		if p == nil {
			p = &devicePosition{}
			out[dev] = p
		}
		if r.str("_measurement") == mProgress {
			p.Through, p.HasThrough = uint64(v), true
		} else {
			p.Marker, p.HasMarker = uint64(v), true
		}
		return nil
	}, func() { clear(out) })
	return out, err
}

// candidate is an edge window whose row changed after the marker.
type candidate struct {
	windowKey
	Size    time.Duration
	Applied float64
}

// candidates lists the device's edge windows starting at or after since
// whose applied_lsn exceeds after (all of them when after < 0).
func (s *store) candidates(ctx context.Context, device, view string, after int64, since int64) ([]candidate, error) {
	cond := ""
	if after >= 0 {
		cond = fmt.Sprintf(" and r._value > %d", after)
	}
	if view != "" {
		cond += " and r.view == " + fluxString(view)
	}
	flux := fmt.Sprintf(`from(bucket: %s)
  |> range(start: %s, stop: %s)
  |> filter(fn: (r) => r._measurement == %q and r.device == %s and r._field == "applied_lsn"%s)
  |> keep(columns: ["_time", "_value", "series", "window", "view"])`,
		fluxString(s.bucket), fluxTime(max(since, timeMin)), fluxTime(timeMax), mWindow, fluxString(device), cond)
	var out []candidate
	err := s.each(ctx, "query windows of "+device, flux, func(r recordView) error {
		v, ok := number(r.value())
		size, err := ParseSize(r.str("window"))
		if !ok || err != nil {
			return nil // not a window row of ours: ignored
		}
		out = append(out, candidate{windowKey{r.str("series"), r.str("window"), r.str("view"), r.time()}, size, v})
		return nil
	}, func() { out = out[:0] })
	return out, err
}

// gap is an edged_gap record: LSNs From..To were removed by the edge's WAL
// quota before they were shipped.
type gap struct{ From, To uint64 }

func (s *store) gaps(ctx context.Context, device string) ([]gap, error) {
	flux := fmt.Sprintf(`from(bucket: %s)
  |> range(start: %s, stop: %s)
  |> filter(fn: (r) => r._measurement == %q and r.device == %s and r._field == "to_lsn")
  |> keep(columns: ["_time", "_value"])`,
		fluxString(s.bucket), fluxTime(timeMin), fluxTime(timeMax), mGap, fluxString(device))
	var out []gap
	err := s.each(ctx, "query gaps of "+device, flux, func(r recordView) error {
		if to, ok := number(r.value()); ok && r.time() >= 0 && to >= float64(r.time()) {
			out = append(out, gap{uint64(r.time()), uint64(to)})
		}
		return nil
	}, func() { out = out[:0] })
	return out, err
}

// chunkData is what a chunk of a device's time line holds.
type chunkData struct {
	rows map[windowKey]*edgeRow
	// recs holds the content field of the existing records.
	recs map[windowKey]map[string]any
	// raw holds each series' points sorted by time.
	raw map[string][]rawPoint
}

// chunk reads the device's edge rows, reconciliation records and raw
// readings with times in [start, end).
func (s *store) chunk(ctx context.Context, device, view string, start, end int64) (*chunkData, error) {
	viewCond := ""
	if view != "" {
		viewCond = " and r.view == " + fluxString(view)
	}
	flux := fmt.Sprintf(`from(bucket: %s)
  |> range(start: %s, stop: %s)
  |> filter(fn: (r) => r.device == %s and (((r._measurement == %q or (r._measurement == %q and r._field == "content"))%s) or (r._measurement == %q and (r._field == "value" or r._field == "lsn"))))
  |> keep(columns: ["_time", "_value", "_field", "_measurement", "series", "window", "view"])`,
		fluxString(s.bucket), fluxTime(start), fluxTime(end), fluxString(device), mWindow, mRecord, viewCond, mReading)
	d := &chunkData{rows: map[windowKey]*edgeRow{}, recs: map[windowKey]map[string]any{}, raw: map[string][]rawPoint{}}
	type rawKey struct {
		series string
		t      int64
	}
	raw := map[rawKey]*rawPoint{}
	err := s.each(ctx, "query "+device+" "+fluxTime(start)+".."+fluxTime(end), flux, func(r recordView) error {
		if r.time() >= end {
			return nil // InfluxDB 1.8 includes range's stop
		}
		field := r.str("_field")
		switch r.str("_measurement") {
		case mReading:
			k := rawKey{r.str("series"), r.time()}
			p := raw[k]
			if p == nil {
				p = &rawPoint{Time: k.t, Value: math.NaN()}
				raw[k] = p
			}
			v, _ := number(r.value())
			if field == "value" {
				p.Value = v
			} else if v >= 0 {
				p.LSN = uint64(v)
			}
		case mWindow:
			k := windowKey{r.str("series"), r.str("window"), r.str("view"), r.time()}
			row := d.rows[k]
			if row == nil {
				size, err := ParseSize(k.Window)
				if err != nil {
					return nil
				}
				row = &edgeRow{windowKey: k, Size: size, Fields: map[string]float64{}}
				d.rows[k] = row
			}
			if v, ok := number(r.value()); ok {
				row.Fields[field] = v
			} else if field == "unit" {
				row.Unit, _ = r.value().(string)
			}
		case mRecord:
			k := windowKey{r.str("series"), r.str("window"), r.str("view"), r.time()}
			rec := d.recs[k]
			if rec == nil {
				rec = map[string]any{}
				d.recs[k] = rec
			}
			rec[field] = r.value()
		}
		return nil
	}, func() {
		clear(d.rows)
		clear(d.recs)
		clear(raw)
	})
	if err != nil {
		return nil, err
	}
	for k, p := range raw {
		if !math.IsNaN(p.Value) {
			d.raw[k.series] = append(d.raw[k.series], *p)
		}
	}
	for _, pts := range d.raw {
		slices.SortFunc(pts, func(a, b rawPoint) int { return compareInt(a.Time, b.Time) })
	}
	return d, nil
}

func compareInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// previousClose returns the close_lsn of the latest edge window of the
// same series, size and view that starts before k.Start.
func (s *store) previousClose(ctx context.Context, device string, k windowKey) (uint64, bool, error) {
	flux := fmt.Sprintf(`from(bucket: %s)
  |> range(start: %s, stop: %s)
  |> filter(fn: (r) => r._measurement == %q and r.device == %s and r.series == %s and r.window == %s and r.view == %s and r._field == "close_lsn" and r._time < %s)
  |> last()
  |> keep(columns: ["_value"])`,
		fluxString(s.bucket), fluxTime(timeMin), fluxTime(k.Start), mWindow,
		fluxString(device), fluxString(k.Series), fluxString(k.Window), fluxString(k.View), fluxTime(k.Start))
	var lsn uint64
	found := false
	err := s.each(ctx, "query previous window of "+device, flux, func(r recordView) error {
		if v, ok := number(r.value()); ok && v >= 0 {
			lsn, found = uint64(v), true
		}
		return nil
	}, func() { lsn, found = 0, false })
	return lsn, found, err
}

// writePoints writes points in requests of at most batch points.
func (s *store) writePoints(ctx context.Context, pts []*write.Point) error {
	const batch = 5000
	for len(pts) > 0 {
		n := min(len(pts), batch)
		err := s.retry(ctx, "write", func() error {
			if err := s.write.WritePoint(ctx, pts[:n]...); err != nil {
				return &StoreError{"write", err} // ctx is the job's own write deadline
			}
			return nil
		})
		if err != nil && !isStoreError(err) {
			err = &StoreError{"write", err} // the write deadline ran out while backing off
		}
		if err != nil {
			return err
		}
		pts = pts[n:]
	}
	return nil
}

// isStoreError reports whether err came from the central store.
func isStoreError(err error) bool {
	var se *StoreError
	return errors.As(err, &se)
}
