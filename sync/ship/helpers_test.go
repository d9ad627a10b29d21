package ship

import (
	"context"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	influxdb2 "github.com/influxdata/influxdb-client-go/v2"
	"go.uber.org/goleak"

	"github.com/edged-io/edged"
	"github.com/edged-io/edged/aggregate/view"
	"github.com/edged-io/edged/internal/servicetest"
	"github.com/edged-io/edged/wal"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testLog opens a log in dir and runs its committer until the test ends.
func testLog(t testing.TB, dir string, o wal.Options) *wal.Log {
	t.Helper()
	o.Dir = dir
	if o.Sync == "" {
		o.Sync = wal.SyncNever
	}
	l, err := wal.Open(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
		l.Close()
	})
	return l
}

// appendReadings appends one readings record and waits until it is durable.
func appendReadings(t testing.TB, l *wal.Log, rs ...edged.Reading) uint64 {
	t.Helper()
	rec, err := edged.AppendRecord(nil, rs)
	if err != nil {
		t.Fatal(err)
	}
	lsn, err := l.AppendSync(context.Background(), rec)
	if err != nil {
		t.Fatal(err)
	}
	return lsn
}

func appendRaw(t testing.TB, l *wal.Log, rec []byte) uint64 {
	t.Helper()
	lsn, err := l.AppendSync(context.Background(), rec)
	if err != nil {
		t.Fatal(err)
	}
	return lsn
}

// reading returns a trusted reading of series at time ts (ns).
func reading(series string, ts int64, v float64) edged.Reading {
	return edged.Reading{Device: "pi", Series: series, Unit: "°C", Value: v, Time: ts, Ingest: ts + int64(time.Millisecond)}
}

// row returns a window row with the given fields set.
func row(series string, size time.Duration, start int64, fields map[string]float64) view.Row {
	r := view.Row{Device: "pi", Series: series, Unit: "°C", Size: size, Start: start, End: start + int64(size),
		Values: make([]float64, len(view.Fields))}
	for i := range r.Values {
		r.Values[i] = math.NaN()
	}
	for k, v := range fields {
		r.Values[view.FieldIndex(k)] = v
	}
	return r
}

// testShipper is a Shipper running in a goroutine.
type testShipper struct {
	*Shipper
	done chan error
	// sleeps records the backoff waits (which return at once, after 1ms).
	mu     sync.Mutex
	sleeps []time.Duration
}

// newShipper builds a shipper whose backoff sleeps are recorded and last
// 1ms. It does not run it.
func newShipper(t testing.TB, o Options) *testShipper {
	t.Helper()
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	ts := &testShipper{Shipper: s}
	s.sleep = func(ctx context.Context, d time.Duration) error {
		ts.mu.Lock()
		ts.sleeps = append(ts.sleeps, d)
		ts.mu.Unlock()
		return sleepCtx(ctx, time.Millisecond)
	}
	return ts
}

func (ts *testShipper) start(t testing.TB) *testShipper {
	t.Helper()
	ts.done = make(chan error, 1)
	go func() { ts.done <- ts.Run(context.Background()) }()
	t.Cleanup(func() { ts.stop(t) })
	// A Close before Run has begun makes Run return ErrClosed at once:
	// wait until it runs, as a daemon's start order guarantees.
	waitFor(t, 10*time.Second, "Run to begin", func() bool {
		ts.runMu.Lock()
		defer ts.runMu.Unlock()
		return ts.running
	})
	return ts
}

// stop closes the shipper and checks Run's result; it is idempotent.
func (ts *testShipper) stop(t testing.TB) {
	t.Helper()
	if ts.done == nil {
		return
	}
	ts.Close()
	if err := <-ts.done; err != nil {
		t.Errorf("Run: %v", err)
	}
	ts.done = nil
}

func (ts *testShipper) recordedSleeps() []time.Duration {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return slices.Clone(ts.sleeps)
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: still waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// caughtUp reports whether the shipper has confirmed everything durable.
func caughtUp(s *Shipper) func() bool {
	return func() bool {
		st := s.Stats()
		return st.LagRecords == 0 && st.EstimatesLagRecords == 0 && st.ProgressReadingsLSN == st.ReadingsCursor &&
			(s.o.Estimates == nil || st.ProgressWindowsLSN == st.WindowsLSN)
	}
}

// influx is a real server with a database for one test.
type influx struct {
	*servicetest.Influxd
	client influxdb2.Client
	bucket string
}

// newDatabase creates database db on s and a query client for it.
func newDatabase(t testing.TB, s *servicetest.Influxd, db string) *influx {
	t.Helper()
	s.Exec(t, "CREATE DATABASE "+db)
	c := influxdb2.NewClientWithOptions(s.URL, s.Token, influxdb2.DefaultOptions().SetHTTPRequestTimeout(30))
	t.Cleanup(c.Close)
	return &influx{Influxd: s, client: c, bucket: db + "/autogen"}
}

// point is a stored point: measurement, tags, time and fields.
type point struct {
	m      string
	tags   map[string]string
	t      int64
	fields map[string]any
}

func (p *point) key() string {
	keys := slices.Sorted(maps.Keys(p.tags))
	var b strings.Builder
	b.WriteString(p.m)
	for _, k := range keys {
		fmt.Fprintf(&b, ",%s=%s", k, p.tags[k])
	}
	fmt.Fprintf(&b, " %d", p.t)
	return b.String()
}

// points reads back every point of measurement m (all of time).
func (db *influx) points(t testing.TB, m string) map[string]*point {
	t.Helper()
	flux := fmt.Sprintf(`from(bucket: %q)
  |> range(start: 1677-09-22T00:00:00Z, stop: 2262-04-10T00:00:00Z)
  |> filter(fn: (r) => r._measurement == %q)`, db.bucket, m)
	res, err := db.client.QueryAPI("").Query(context.Background(), flux)
	if err != nil {
		t.Fatalf("flux query: %v\n%s", err, flux)
	}
	defer res.Close()
	out := map[string]*point{}
	for res.Next() {
		r := res.Record()
		p := &point{m: r.Measurement(), tags: map[string]string{}, t: r.Time().UnixNano(), fields: map[string]any{}}
		for k, v := range r.Values() {
			if !strings.HasPrefix(k, "_") && k != "result" && k != "table" {
				p.tags[k] = fmt.Sprint(v)
			}
		}
		k := p.key()
		if q, ok := out[k]; ok {
			p = q
		} else {
			out[k] = p
		}
		p.fields[r.Field()] = r.Value()
	}
	if err := res.Err(); err != nil {
		t.Fatalf("flux result: %v", err)
	}
	return out
}
