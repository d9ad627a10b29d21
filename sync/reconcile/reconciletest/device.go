// Package reconciletest plays an edged device and its shipper, for tests
// of the batch layer against a real InfluxDB. Readings are fed to the real
// window engine (aggregate.Aggregator); its emissions and amendments are
// folded into cumulative window rows the way aggregate/stream folds them
// (accounting summed, applied_lsn = LSN, or LSN + ½ for an amendment); and
// Points renders everything with the central schema documented in
// sync/ship: edged_reading, edged_untrusted, edged_window, edged_gap and
// edged_progress.
package reconciletest

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/influxdata/influxdb-client-go/v2/api/write"

	"github.com/edged-io/edged"
	"github.com/edged-io/edged/aggregate"
)

// Device is one simulated edge device. Not safe for concurrent use.
type Device struct {
	Name string
	// View is the view tag of its windows ("v1").
	View string

	agg      *aggregate.Aggregator
	alpha    float64
	lsn      uint64
	readings []edged.Reading
	dropped  [][2]uint64
	rows     map[rowKey][]Row // every version of every row, in LSN order
	order    []rowKey
	// Windows are every emission and amendment, in order.
	Windows []aggregate.Window
}

type rowKey struct {
	series string
	size   time.Duration
	start  int64
}

// Row is one version of an edged_window point.
type Row struct {
	Series, Unit string
	Size         time.Duration
	Start        int64
	// Fields are the numeric fields of the row (count, sum, …, late,
	// close_lsn, applied_lsn, alpha, end).
	Fields map[string]float64
}

// NewDevice returns a device whose aggregator runs with o.
func NewDevice(name string, o aggregate.Options) (*Device, error) {
	a, err := aggregate.New(o)
	if err != nil {
		return nil, err
	}
	return &Device{Name: name, View: "v1", agg: a, alpha: a.Options().RelativeAccuracy, rows: map[rowKey][]Row{}}, nil
}

// LSN returns the LSN of the latest record.
func (d *Device) LSN() uint64 { return d.lsn }

// Add appends a reading of series (unit "°C") as a record of its own and
// feeds it to the aggregator. It returns the record's LSN.
func (d *Device) Add(series string, t, ingest time.Time, v float64) uint64 {
	return d.AddFlags(series, t, ingest, v, 0)
}

// AddFlags is Add with source flags (edged.ClockUnsynced, …).
func (d *Device) AddFlags(series string, t, ingest time.Time, v float64, f edged.Flags) uint64 {
	d.lsn++
	r := edged.Reading{Device: d.Name, Series: series, Unit: "°C", Value: v, Time: t.UnixNano(),
		Ingest: ingest.UnixNano(), Flags: f, LSN: d.lsn}
	d.readings = append(d.readings, r)
	d.agg.Add(r, d.emit)
	return d.lsn
}

// Tick appends a tick record at processing time now.
func (d *Device) Tick(now time.Time) uint64 {
	d.lsn++
	d.agg.Tick(now.UnixNano(), d.lsn, d.emit)
	return d.lsn
}

// Drop removes the records from..to (inclusive) before they are shipped,
// as the WAL size quota does: their readings are not shipped, a gap point
// is.
func (d *Device) Drop(from, to uint64) { d.dropped = append(d.dropped, [2]uint64{from, to}) }

// Tamper changes a field of the latest version of a window row (to
// simulate an edge bug).
func (d *Device) Tamper(series string, size time.Duration, start time.Time, field string, f func(float64) float64) error {
	vs := d.rows[rowKey{series, size, start.UnixNano()}]
	if len(vs) == 0 {
		return fmt.Errorf("reconciletest: no %v window of %s at %v", size, series, start)
	}
	last := &vs[len(vs)-1]
	last.Fields[field] = f(last.Fields[field])
	return nil
}

// Row returns the latest version of a window row.
func (d *Device) Row(series string, size time.Duration, start time.Time) (Row, bool) {
	vs := d.rows[rowKey{series, size, start.UnixNano()}]
	if len(vs) == 0 {
		return Row{}, false
	}
	return vs[len(vs)-1], true
}

// Rows returns the latest version of every row, in order of first emission.
func (d *Device) Rows() []Row {
	out := make([]Row, 0, len(d.order))
	for _, k := range d.order {
		vs := d.rows[k]
		out = append(out, vs[len(vs)-1])
	}
	return out
}

func (d *Device) emit(w aggregate.Window) {
	d.Windows = append(d.Windows, w)
	k := rowKey{w.Series, w.Size, w.Start}
	vs := d.rows[k]
	var f map[string]float64
	if len(vs) == 0 {
		f = map[string]float64{}
		d.order = append(d.order, k)
	} else {
		f = maps(vs[len(vs)-1].Fields)
	}
	mark := float64(w.CloseLSN)
	if w.Amended {
		mark += 0.5
	}
	if !w.Amended {
		f["count"] = float64(w.Count)
		if w.Count > 0 {
			f["sum"], f["min"], f["max"], f["mean"] = w.Sum, w.Min, w.Max, w.Mean
			f["first"], f["last"] = w.First.Value, w.Last.Value
			for _, q := range w.Quantiles {
				f[fmt.Sprintf("p%g", q.Q*100)] = q.Value
			}
		}
		f["close_lsn"] = float64(w.CloseLSN)
	}
	add := func(name string, n uint64) { f[name] += float64(n) }
	add("late", w.Late)
	add("duplicates", w.Duplicates)
	add("conflicts", w.Conflicts)
	add("untrusted", w.Untrusted+w.Invalid)
	f["applied_lsn"] = mark
	f["alpha"] = d.alpha
	f["end"] = float64(w.End)
	d.rows[k] = append(vs, Row{Series: w.Series, Unit: w.Unit, Size: w.Size, Start: w.Start, Fields: f})
}

func maps(m map[string]float64) map[string]float64 {
	c := make(map[string]float64, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

func (d *Device) isDropped(lsn uint64) bool {
	for _, r := range d.dropped {
		if lsn >= r[0] && lsn <= r[1] {
			return true
		}
	}
	return false
}

// Points renders what the shipper has sent once it has shipped every
// record ≤ through.
func (d *Device) Points(through uint64) []*write.Point { return d.PointsSplit(through, through) }

// PointsSplit renders what the shipper has sent once it has shipped the
// readings log through readingsLSN and the window rows produced for
// records ≤ windowsLSN: readings (the last write of an identity wins, as
// in InfluxDB), untrusted readings, the latest version of each row, gaps
// and the progress point with through_lsn = min of the two.
func (d *Device) PointsSplit(readingsLSN, windowsLSN uint64) []*write.Point {
	var pts []*write.Point
	for _, r := range d.readings {
		if r.LSN > readingsLSN || d.isDropped(r.LSN) || math.IsNaN(r.Value) || math.IsInf(r.Value, 0) {
			continue
		}
		m := "edged_reading"
		if d.agg.Untrusted(&r) {
			m = "edged_untrusted"
		}
		pts = append(pts, write.NewPoint(m, map[string]string{"device": d.Name, "series": r.Series},
			map[string]any{"value": r.Value, "unit": r.Unit, "lsn": int64(r.LSN), "ingest": r.Ingest, "flags": int64(r.Flags)},
			time.Unix(0, r.Time)))
	}
	for _, k := range d.order {
		vs := d.rows[k]
		i := len(vs) - 1
		for i >= 0 && math.Floor(vs[i].Fields["applied_lsn"]) > float64(windowsLSN) {
			i--
		}
		if i < 0 {
			continue
		}
		pts = append(pts, d.rowPoint(vs[i]))
	}
	for _, g := range d.dropped {
		if g[0] <= readingsLSN {
			pts = append(pts, write.NewPoint("edged_gap", map[string]string{"device": d.Name},
				map[string]any{"to_lsn": int64(g[1]), "count": int64(g[1] - g[0] + 1), "noticed": int64(1)},
				time.Unix(0, int64(g[0]))))
		}
	}
	through := min(readingsLSN, windowsLSN)
	pts = append(pts, write.NewPoint("edged_progress", map[string]string{"device": d.Name},
		map[string]any{"readings_lsn": int64(readingsLSN), "windows_lsn": int64(windowsLSN),
			"through_lsn": int64(through), "updated": int64(1)}, time.Unix(0, 0)))
	return pts
}

func (d *Device) rowPoint(r Row) *write.Point {
	fields := map[string]any{}
	keys := make([]string, 0, len(r.Fields))
	for k := range r.Fields {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		fields[k] = r.Fields[k]
	}
	if r.Unit != "" {
		fields["unit"] = r.Unit
	}
	return write.NewPoint("edged_window",
		map[string]string{"device": d.Name, "series": r.Series, "window": WindowTag(r.Size), "view": d.View},
		fields, time.Unix(0, r.Start))
}

// WindowTag formats a size as the window tag: "10s", "1m", "1h", "1h30m".
func WindowTag(size time.Duration) string {
	s := size.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}
