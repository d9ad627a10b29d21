package reconcile_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/edged-io/edged/sync/reconcile"
	"github.com/edged-io/edged/sync/reconcile/reconciletest"
)

// BenchmarkRun measures windows reconciled per second against a real
// InfluxDB: three devices with two series each over an hour at 1 Hz
// (21,600 readings), windows of 10s, 1m and 1h (2,526 windows). It reports
// the first run (everything computed and written) once, then times --full
// re-runs (everything recomputed, nothing written) at --parallel 1 and 3,
// each against a reference measured in the same run: one Flux query
// reading every raw reading (value and lsn) of the three devices, the
// floor for any job that looks at the raw data.
func BenchmarkRun(b *testing.B) {
	c := startCentral(b)
	opts := edgeOpts
	opts.Windows = []time.Duration{10 * time.Second, time.Minute, time.Hour}
	const devices, seconds = 3, 3600
	var windows int
	for k := range devices {
		d, err := reconciletest.NewDevice(fmt.Sprintf("dev%d", k), opts)
		if err != nil {
			b.Fatal(err)
		}
		for i := range seconds {
			ts := sec(float64(i))
			d.Add(temp, ts, ts.Add(100*time.Millisecond), tempAt(i)+float64(k))
			d.Add(hum, ts, ts.Add(100*time.Millisecond), humAt(i))
			d.Tick(ts.Add(500 * time.Millisecond))
		}
		d.Tick(sec(seconds + 100))
		windows += len(d.Rows())
		c.ship(b, d.Points(d.LSN()))
	}
	run := func(o reconcile.Options) (*reconcile.Report, time.Duration) {
		j, err := reconcile.New(o)
		if err != nil {
			b.Fatal(err)
		}
		defer j.Close()
		t0 := time.Now()
		rep, err := j.Run(context.Background())
		if err != nil || rep.Total.Exact != windows {
			b.Fatalf("run: %v, %+v, want %d exact windows", err, rep.Total, windows)
		}
		return rep, time.Since(t0)
	}
	rep, first := run(c.options())
	b.Logf("first run: %d windows, %d points written in %v: %.0f windows/s", windows, rep.Total.Written,
		first.Round(time.Millisecond), float64(windows)/first.Seconds())

	scan := func() time.Duration {
		flux := fmt.Sprintf(`from(bucket: %q) |> range(start: 2024-03-01T00:00:00Z, stop: 2024-03-02T00:00:00Z)
  |> filter(fn: (r) => r._measurement == "edged_reading" and (r._field == "value" or r._field == "lsn"))
  |> keep(columns: ["_time", "_value", "_field", "_measurement", "series"])`, c.s.Bucket)
		t0 := time.Now()
		res, err := c.client.QueryAPI(c.s.Org).Query(context.Background(), flux)
		if err != nil {
			b.Fatal(err)
		}
		n := 0
		for res.Next() {
			n++
		}
		res.Close()
		if res.Err() != nil || n != 2*devices*2*seconds {
			b.Fatalf("reference scan: %d records, %v", n, res.Err())
		}
		return time.Since(t0)
	}
	for _, parallel := range []int{1, 3} {
		b.Run(fmt.Sprintf("full/parallel=%d", parallel), func(b *testing.B) {
			o := c.options()
			o.Full, o.Parallel = true, parallel
			var job, ref time.Duration
			for b.Loop() {
				_, el := run(o)
				job += el
				ref += scan()
			}
			b.ReportMetric(float64(windows)*float64(b.N)/job.Seconds(), "windows/s")
			b.ReportMetric(job.Seconds()/ref.Seconds(), "x-raw-scan")
		})
	}
}
