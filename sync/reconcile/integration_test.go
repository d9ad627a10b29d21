package reconcile_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	influxdb2 "github.com/influxdata/influxdb-client-go/v2"
	"github.com/influxdata/influxdb-client-go/v2/api/write"
	"go.uber.org/goleak"

	"github.com/edged-io/edged"
	"github.com/edged-io/edged/aggregate"
	"github.com/edged-io/edged/internal/servicetest"
	"github.com/edged-io/edged/sync/reconcile"
	"github.com/edged-io/edged/sync/reconcile/reconciletest"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	temp = "gh/temp"
	hum  = "gh/hum"
)

var (
	base     = time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	edgeOpts = aggregate.Options{Windows: []time.Duration{10 * time.Second, time.Minute},
		Lateness: 2 * time.Second, IdleAfter: 5 * time.Second}
)

func sec(s float64) time.Time { return base.Add(time.Duration(s * float64(time.Second))) }

func tempAt(i int) float64 { return 20 + float64(i%17)/3 + 0.1 }
func humAt(i int) float64  { return 55 - float64(i%11)*0.7 }

// simulate runs a device for n seconds: both series read once a second
// (ingested 100 ms later), a tick every second, hook after each second's
// readings, and a last tick a minute later that closes every window.
func simulate(t testing.TB, name string, n int, hook func(d *reconciletest.Device, i int)) *reconciletest.Device {
	t.Helper()
	d, err := reconciletest.NewDevice(name, edgeOpts)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		ts := sec(float64(i))
		d.Add(temp, ts, ts.Add(100*time.Millisecond), tempAt(i))
		d.Add(hum, ts, ts.Add(100*time.Millisecond), humAt(i))
		if hook != nil {
			hook(d, i)
		}
		d.Tick(ts.Add(500 * time.Millisecond))
	}
	d.Tick(sec(float64(n + 60)))
	return d
}

// central is a real influxd behind a proxy that counts write requests.
type central struct {
	s      *servicetest.Influxd
	url    string // the proxy
	writes atomic.Int64
	// breakQueries makes the next queries fail: first with a truncated
	// body, then with 503.
	breakQueries atomic.Int64
	client       influxdb2.Client
	token        string // token file
}

func startCentral(t testing.TB) *central {
	t.Helper()
	c := &central{s: servicetest.StartInfluxd(t)}
	target, _ := url.Parse(c.s.URL)
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.Transport = &http.Transport{DisableKeepAlives: true}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/write") {
			c.writes.Add(1)
		}
		if strings.HasSuffix(r.URL.Path, "/query") {
			switch c.breakQueries.Add(-1) {
			case 1:
				w.Header().Set("Content-Encoding", "gzip")
				w.Header().Set("Content-Type", "text/csv")
				w.WriteHeader(http.StatusOK)
				w.Write([]byte{0x1f, 0x8b, 8}) // a gzip stream cut short
				return
			case 0:
				http.Error(w, `{"code":"unavailable","message":"try later"}`, http.StatusServiceUnavailable)
				return
			default:
				c.breakQueries.Store(-1 << 40)
			}
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	c.url = srv.URL
	c.client = influxdb2.NewClientWithOptions(c.s.URL, c.s.Token, influxdb2.DefaultOptions().SetMaxRetries(0).SetHTTPRequestTimeout(30))
	t.Cleanup(c.client.Close)
	c.token = filepath.Join(t.TempDir(), "influx-token")
	if err := os.WriteFile(c.token, []byte(c.s.Token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return c
}

func (c *central) ship(t testing.TB, pts []*write.Point) {
	t.Helper()
	w := c.client.WriteAPIBlocking(c.s.Org, c.s.Bucket)
	for len(pts) > 0 {
		n := min(len(pts), 5000)
		if err := w.WritePoint(context.Background(), pts[:n]...); err != nil {
			t.Fatalf("shipping: %v", err)
		}
		pts = pts[n:]
	}
}

func (c *central) options() reconcile.Options {
	return reconcile.Options{URL: c.url, Bucket: c.s.Bucket, Token: c.s.Token, Parallel: 3, Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}
}

func (c *central) run(t *testing.T, o reconcile.Options) *reconcile.Report {
	t.Helper()
	j, err := reconcile.New(o)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	rep, err := j.Run(context.Background())
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	return rep
}

// records reads every edged_reconciliation field of a device, by window.
func (c *central) records(t *testing.T, device string) map[string]map[string]any {
	t.Helper()
	flux := fmt.Sprintf(`from(bucket: %q) |> range(start: 1900-01-01T00:00:00Z, stop: 2200-01-01T00:00:00Z)
  |> filter(fn: (r) => r._measurement == "edged_reconciliation" and r.device == %q)`, c.s.Bucket, device)
	res, err := c.client.QueryAPI(c.s.Org).Query(context.Background(), flux)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Close()
	out := map[string]map[string]any{}
	for res.Next() {
		r := res.Record()
		k := fmt.Sprintf("%s %s %s", r.ValueByKey("series"), r.ValueByKey("window"), r.Time().Sub(base))
		if out[k] == nil {
			out[k] = map[string]any{}
		}
		out[k][r.Field()] = r.Value()
	}
	if err := res.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// countPoints counts the points of a measurement (by one of its fields).
func (c *central) countPoints(t *testing.T, measurement, field string) int64 {
	t.Helper()
	flux := fmt.Sprintf(`from(bucket: %q) |> range(start: 1900-01-01T00:00:00Z, stop: 2200-01-01T00:00:00Z)
  |> filter(fn: (r) => r._measurement == %q and r._field == %q) |> group() |> count()`, c.s.Bucket, measurement, field)
	res, err := c.client.QueryAPI(c.s.Org).Query(context.Background(), flux)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Close()
	var n int64
	for res.Next() {
		n += res.Record().Value().(int64)
	}
	return n
}

func (c *central) main(args ...string) (int, string, string) {
	var stdout, stderr bytes.Buffer
	args = append(args[:1:1], append([]string{"--url", c.url, "--bucket", c.s.Bucket, "--token-file", c.token}, args[1:]...)...)
	code := reconcile.Main(context.Background(), args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func deviceReport(t *testing.T, rep *reconcile.Report, name string) *reconcile.DeviceReport {
	t.Helper()
	for _, d := range rep.Devices {
		if d.Device == name {
			return d
		}
	}
	t.Fatalf("no report for device %s", name)
	return nil
}

func key(series, window string, start float64) string {
	return fmt.Sprintf("%s %s %s", series, window, time.Duration(start*float64(time.Second)))
}

// TestReconcile is the batch layer end to end against a real InfluxDB:
// six simulated devices with one kind of fault each, reconciled in
// parallel, then re-run (nothing written), then fed late data (only the
// affected windows re-reconciled), then served.
func TestReconcile(t *testing.T) {
	c := startCentral(t)

	var gapFrom, gapTo, gap2From, gap2To uint64
	var partialThrough uint64
	devices := map[string]*reconciletest.Device{
		"clean": simulate(t, "clean", 180, func(d *reconciletest.Device, i int) {
			switch i {
			case 40: // a duplicate within the lateness
				d.Add(temp, sec(39), sec(40.2), tempAt(39))
			case 41: // an 1970 timestamp, and a reading flagged before NTP sync
				d.Add(temp, time.Unix(600, 0), sec(41.2), 1)
				d.AddFlags(temp, sec(41.5), sec(41.6), 2, edged.ClockUnsynced)
			}
		}),
		"late": simulate(t, "late", 180, func(d *reconciletest.Device, i int) {
			if i == 100 { // long after their windows closed
				d.Add(temp, sec(65.5), sec(100.2), 99)  // a new identity
				d.Add(temp, sec(50), sec(100.3), 77.25) // overwrites an accepted one centrally
			}
		}),
		"conflict": simulate(t, "conflict", 180, func(d *reconciletest.Device, i int) {
			if i == 30 { // same identity, another value, within the lateness
				d.Add(temp, sec(29), sec(30.2), 1000)
			}
		}),
		"gap": simulate(t, "gap", 180, func(d *reconciletest.Device, i int) {
			switch i {
			case 17:
				gapFrom = d.LSN() - 1
			case 18:
				gapTo = d.LSN()
			case 60: // the first readings of [60s, 70s) and [60s, 120s)
				gap2From = d.LSN() - 1
			case 65:
				gap2To = d.LSN()
			}
		}),
		"tamper": simulate(t, "tamper", 180, nil),
		"partial": simulate(t, "partial", 180, func(d *reconciletest.Device, i int) {
			if i == 120 {
				partialThrough = d.LSN()
			}
		}),
	}
	devices["gap"].Drop(gapFrom, gapTo)
	devices["gap"].Drop(gap2From, gap2To)
	if err := devices["tamper"].Tamper(temp, 10*time.Second, sec(30), "count", func(v float64) float64 { return v + 1 }); err != nil {
		t.Fatal(err)
	}
	for name, d := range devices {
		if name == "partial" {
			c.ship(t, d.PointsSplit(partialThrough, d.LSN()))
		} else {
			c.ship(t, d.Points(d.LSN()))
		}
	}

	// First run, through the command line, JSON report to a file and
	// stdout.
	reportFile := filepath.Join(t.TempDir(), "report.json")
	t0 := time.Now()
	code, stdout, stderr := c.main("run", "--parallel", "3", "--json", "--report", reportFile, "--progress", "1ms")
	elapsed := time.Since(t0)
	if code != reconcile.ExitDrift {
		t.Fatalf("first run: exit %d, want %d (drift in device tamper)\nstderr: %s", code, reconcile.ExitDrift, stderr)
	}
	var rep reconcile.Report
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatalf("JSON report: %v\n%s", err, stdout)
	}
	fileReport, err := os.ReadFile(reportFile)
	if err != nil || !bytes.Equal(bytes.TrimSpace(fileReport), bytes.TrimSpace([]byte(stdout))) {
		t.Fatalf("--report file differs from --json output (%v)", err)
	}
	if !strings.Contains(stderr, "windows/s") {
		t.Errorf("no progress line on stderr: %q", stderr)
	}
	t.Logf("first run: %d windows checked in %v (%.0f windows/s)", rep.Total.Checked, elapsed, rep.WindowsPerSecond)
	checkGolden(t, "report.golden", scrubReport(t, stdout))

	t.Run("clean", func(t *testing.T) {
		d := deviceReport(t, &rep, "clean")
		if d.Checked != 44 || d.Exact != 44 || d.Causes.Duplicates != 2 || d.Causes.Untrusted != 4 {
			t.Errorf("clean: %+v", d.Tally)
		}
		recs := c.records(t, "clean")
		if len(recs) != 44 {
			t.Errorf("%d reconciliation records, want 44", len(recs))
		}
		for k, r := range recs {
			if r["status"] != "exact" || r["sketch_max_rel_err"].(float64) > r["alpha"].(float64) {
				t.Errorf("%s: %v", k, r)
			}
		}
		if r := recs[key(temp, "10s", 30)]; r["duplicates"] != int64(1) {
			t.Errorf("duplicate not counted on [30s, 40s): %v", r)
		}
		if r := recs[fmt.Sprintf("%s 10s %s", temp, time.Unix(600, 0).Sub(base))]; r["untrusted"] != int64(1) || r["exact_count"] != int64(0) {
			t.Errorf("1970 window: %v", r)
		}
	})
	t.Run("late", func(t *testing.T) {
		d := deviceReport(t, &rep, "late")
		if d.Checked != 42 || d.Explained != 4 || d.Exact != 38 || d.Causes.Late != 4 {
			t.Errorf("late: %+v", d.Tally)
		}
		recs := c.records(t, "late")
		r := recs[key(temp, "10s", 60)]
		if r["status"] != "explained" || r["count_delta"] != int64(1) || r["late"] != int64(1) ||
			r["max_delta"] != 99-maxTemp(60, 70) {
			t.Errorf("[60s, 70s): %v", r)
		}
		if s := r["sum_delta"].(float64); math.Abs(s-99) > 1e-9 {
			t.Errorf("[60s, 70s) sum_delta %v, want 99", s)
		}
		r = recs[key(temp, "10s", 50)]
		if r["status"] != "explained" || r["count_delta"] != int64(0) || r["first_delta"] != 77.25-tempAt(50) {
			t.Errorf("[50s, 60s): %v", r)
		}
		if r := recs[key(temp, "1m", 60)]; r["count_delta"] != int64(1) || r["status"] != "explained" {
			t.Errorf("1m [60s, 120s): %v", r)
		}
	})
	t.Run("conflict", func(t *testing.T) {
		d := deviceReport(t, &rep, "conflict")
		if d.Explained != 2 || d.Drift != 0 || d.Causes.Conflicts != 2 {
			t.Errorf("conflict: %+v", d.Tally)
		}
		r := c.records(t, "conflict")[key(temp, "10s", 20)]
		if r["status"] != "explained" || r["count_delta"] != int64(0) || r["last_delta"] != 1000-tempAt(29) ||
			!strings.Contains(r["explanation"].(string), "conflicts") {
			t.Errorf("[20s, 30s): %v", r)
		}
	})
	t.Run("gap", func(t *testing.T) {
		d := deviceReport(t, &rep, "gap")
		if d.Explained != 8 || d.Drift != 0 || d.Causes.Dropped != 8+24 {
			t.Errorf("gap: %+v", d.Tally)
		}
		recs := c.records(t, "gap")
		r := recs[key(hum, "10s", 10)]
		if r["status"] != "explained" || r["count_delta"] != int64(-2) || r["dropped"] != int64(2) {
			t.Errorf("[10s, 20s): %v", r)
		}
		// The gap precedes every reading of [60s, 70s) in the store, but
		// follows the close of [50s, 60s): in the window's LSN span.
		r = recs[key(temp, "10s", 60)]
		if r["status"] != "explained" || r["count_delta"] != int64(-6) || r["dropped"] != int64(6) {
			t.Errorf("[60s, 70s): %v", r)
		}
	})
	t.Run("tamper", func(t *testing.T) {
		d := deviceReport(t, &rep, "tamper")
		if d.Drift != 1 || d.Exact != 41 || len(rep.Drift) != 1 {
			t.Fatalf("tamper: %+v, drift %+v", d.Tally, rep.Drift)
		}
		dr := rep.Drift[0]
		if dr.Device != "tamper" || dr.Series != temp || dr.Start != sec(30).UnixNano() || dr.CountDelta != -1 ||
			!strings.Contains(dr.Explanation, "count -1 with no WAL gap") {
			t.Errorf("drift %+v", dr)
		}
	})
	t.Run("partial", func(t *testing.T) {
		d := deviceReport(t, &rep, "partial")
		if d.Checked != 24 || d.Exact != 24 || d.Pending != 18 || d.ThroughLSN != partialThrough {
			t.Errorf("partial: %+v", d)
		}
	})

	// Nothing new: nothing written, to the job's own count and at the
	// store (no write request at all).
	nRec, nBatch := c.countPoints(t, "edged_reconciliation", "status"), c.countPoints(t, "edged_batch", "count")
	writes := c.writes.Load()
	again := c.run(t, c.options())
	if again.Total.Written != 0 || again.Total.Checked != 0 || c.writes.Load() != writes {
		t.Fatalf("second run wrote %d points (%d write requests): %+v", again.Total.Written, c.writes.Load()-writes, again.Total)
	}
	if again.Total.Pending != 18 || again.Total.Drift != 0 {
		t.Errorf("second run: %+v", again.Total)
	}
	if n, m := c.countPoints(t, "edged_reconciliation", "status"), c.countPoints(t, "edged_batch", "count"); n != nRec || m != nBatch {
		t.Fatalf("points changed: reconciliation %d → %d, batch %d → %d", nRec, n, nBatch, m)
	}
	if nRec != 44+42*3+41+24+ /* tamper's drift window */ 1 {
		t.Errorf("%d reconciliation records", nRec)
	}

	// Late data after a run: the shipper sends the raw reading and the
	// amended rows; the next run re-reconciles exactly those windows.
	late := devices["late"]
	late.Add(temp, sec(125.25), sec(300), -5)
	late.Tick(sec(301))
	c.ship(t, late.Points(late.LSN()))
	// On the gap device, into a window short of dropped readings: its
	// previous window is outside what the re-run reads, so the span's
	// lower bound comes from the store.
	gapDev := devices["gap"]
	gapDev.Add(temp, sec(64.5), sec(300), 5)
	gapDev.Tick(sec(301))
	c.ship(t, gapDev.Points(gapDev.LSN()))
	third := c.run(t, c.options())
	d := deviceReport(t, third, "late")
	if d.Checked != 2 || d.Explained != 2 || d.Written != 5 {
		t.Fatalf("after late data: %+v", d.Tally)
	}
	if r := c.records(t, "late")[key(temp, "10s", 120)]; r["count_delta"] != int64(1) || r["min_delta"] != -5-minTemp(120, 130) {
		t.Errorf("[120s, 130s) after late data: %v", r)
	}
	d = deviceReport(t, third, "gap")
	if d.Checked != 2 || d.Explained != 2 || d.Written != 5 || third.Total.Written != 10 || third.Total.Checked != 4 {
		t.Fatalf("gap device after late data: %+v, total %+v, drift %+v", d.Tally, third.Total, third.Drift)
	}
	if r := c.records(t, "gap")[key(temp, "10s", 60)]; r["count_delta"] != int64(-5) || r["late"] != int64(1) ||
		r["dropped"] != int64(5) || r["status"] != "explained" {
		t.Errorf("gap [60s, 70s) after late data: %v", r)
	}

	t.Run("query", func(t *testing.T) {
		code, out, errOut := c.main("query", "--device", "partial", "--series", temp, "--window", "10s",
			"--from", base.Format(time.RFC3339), "--to", sec(180).Format(time.RFC3339), "--json")
		if code != 0 {
			t.Fatalf("query: exit %d: %s", code, errOut)
		}
		var rows []reconcile.ServedRow
		if err := json.Unmarshal([]byte(out), &rows); err != nil {
			t.Fatal(err)
		}
		if len(rows) != 18 {
			t.Fatalf("%d rows, want 18", len(rows))
		}
		for i, r := range rows {
			want := reconcile.SourceEdge
			if i < 11 { // closed at or before the shipped-through LSN
				want = reconcile.SourceBatch
			}
			if r.Source != want || r.Count != 10 || !r.Start.Equal(sec(float64(10*i))) {
				t.Errorf("row %d: %+v, want source %s", i, r, want)
			}
			if want == reconcile.SourceBatch && (r.Status != "exact" || r.Values["p95"] == 0) {
				t.Errorf("row %d: %+v", i, r)
			}
		}
		// The table marks the sources too.
		code, out, _ = c.main("query", "--device", "late", "--series", temp, "--window", "1m", "--from", base.Format(time.RFC3339), "--to", "2024-03-01T12:03:00Z")
		if code != 0 || strings.Count(out, " batch ") != 3 || !strings.Contains(out, "explained") {
			t.Errorf("query table: exit %d\n%s", code, out)
		}
	})

	t.Run("interrupted", func(t *testing.T) {
		d := simulate(t, "stopper", 180, nil)
		c.ship(t, d.Points(d.LSN()))
		o := c.options()
		o.Devices, o.Parallel = []string{"stopper"}, 1
		// A dry run first: computes, reports, writes nothing.
		writes := c.writes.Load()
		dry := o
		dry.DryRun = true
		if rep := c.run(t, dry); rep.Total.Checked != 42 || rep.Total.Written != 0 || c.writes.Load() != writes {
			t.Fatalf("dry run: %+v, %d write requests", rep.Total, c.writes.Load()-writes)
		}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		n := 0
		reconcile.SetTestHookWindow(func() {
			if n++; n == 10 {
				cancel() // as SIGTERM does, between two windows
			}
		})
		j, err := reconcile.New(o)
		if err != nil {
			t.Fatal(err)
		}
		defer j.Close()
		rep, err := j.Run(ctx)
		reconcile.SetTestHookWindow(nil)
		if !errors.Is(err, context.Canceled) || rep.Complete || rep.Total.Checked != 10 || rep.Total.Written != 20 {
			t.Fatalf("interrupted run: %v, %+v", err, rep.Total)
		}
		rep = c.run(t, o)
		if !rep.Complete || rep.Total.Checked != 42 || rep.Total.Unchanged != 10 || rep.Total.Written != 2*32+1 {
			t.Fatalf("run after the interrupted one: %+v", rep.Total)
		}
		if rep = c.run(t, o); rep.Total.Written != 0 {
			t.Fatalf("third run wrote %d", rep.Total.Written)
		}
	})

	t.Run("failed queries are retried", func(t *testing.T) {
		c.breakQueries.Store(2)
		o := c.options()
		o.Devices, o.Full = []string{"clean"}, true
		rep := c.run(t, o)
		if n := c.breakQueries.Load(); n > 0 || rep.Total.Checked != 44 || rep.Total.Written != 0 {
			t.Fatalf("%d breaks left; %+v", n, rep.Total)
		}
	})

	t.Run("exit codes", func(t *testing.T) {
		for _, tc := range []struct {
			args []string
			code int
			out  string
		}{
			{[]string{"run", "--device", "tamper", "--full"}, reconcile.ExitDrift, "DRIFT (1 windows)"},
			{[]string{"run", "--device", "clean", "--device", "late"}, reconcile.ExitOK, "complete"},
			{[]string{"run", "--device", "nosuch"}, reconcile.ExitUsage, ""},
			{[]string{"run", "--token", "secret"}, reconcile.ExitUsage, ""},
			{[]string{"run", "--parallel", "x"}, reconcile.ExitUsage, ""},
			{[]string{"run", "--timeout", "1ns"}, reconcile.ExitIncomplete, ""},
			{[]string{"query", "--device", "clean"}, reconcile.ExitUsage, ""},
			{[]string{"frobnicate"}, reconcile.ExitUsage, ""},
		} {
			code, out, errOut := c.main(tc.args...)
			if testing.Verbose() && tc.code == reconcile.ExitDrift {
				t.Logf("summary of %v:\n%s", tc.args, out)
			}
			if code != tc.code || !strings.Contains(out, tc.out) || strings.Contains(out+errOut, "user:pass") {
				t.Errorf("%v: exit %d, want %d\nstdout: %s\nstderr: %s", tc.args, code, tc.code, out, errOut)
			}
		}
		// Everything from a configuration file, flags overriding it.
		cfg := filepath.Join(t.TempDir(), "reconcile.yaml")
		os.WriteFile(cfg, []byte(fmt.Sprintf("influx:\n  url: %s\n  bucket: %s\n  token_file: %s\nrun:\n  parallel: 2\n  progress: 0s\n  devices: [nosuch]\n",
			c.url, c.s.Bucket, c.token)), 0o600)
		var cfgOut, cfgErr bytes.Buffer
		if code := reconcile.Main(context.Background(), []string{"run", "--config", cfg, "--device", "clean"}, &cfgOut, &cfgErr); code != 0 ||
			!strings.Contains(cfgOut.String(), "clean") || cfgErr.Len() != 0 {
			t.Errorf("run --config: exit %d\n%s\n%s", code, cfgOut.String(), cfgErr.String())
		}

		// An unreachable store.
		var stdout, stderr bytes.Buffer
		code := reconcile.Main(context.Background(), []string{"run", "--url", "http://127.0.0.1:1", "--bucket", "b", "--progress", "0"}, &stdout, &stderr)
		if code != reconcile.ExitStore {
			t.Errorf("unreachable store: exit %d, want %d: %s", code, reconcile.ExitStore, stderr.String())
		}
	})
}

func maxTemp(from, to int) float64 {
	m := math.Inf(-1)
	for i := from; i < to; i++ {
		m = max(m, tempAt(i))
	}
	return m
}

func minTemp(from, to int) float64 {
	m := math.Inf(1)
	for i := from; i < to; i++ {
		m = min(m, tempAt(i))
	}
	return m
}

// scrubReport replaces the fields that vary from run to run.
func scrubReport(t *testing.T, s string) []byte {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"started", "finished", "seconds", "windows_per_second"} {
		v[k] = "X"
	}
	for _, d := range v["devices"].([]any) {
		d.(map[string]any)["seconds"] = "X"
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '\n')
}

func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (run with -update to accept):\n%s", path, got)
	}
}
