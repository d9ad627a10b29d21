package replay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/edged-io/edged"
	"github.com/edged-io/edged/aggregate"
	"github.com/edged-io/edged/aggregate/stream"
	"github.com/edged-io/edged/wal"
)

// The replay benchmark: the rate from the log to closed windows, in
// readings/s, beside the raw scan rate of the same log measured in the
// same run (wal's BenchmarkReplayScan: records read and checksummed from
// the page cache, nothing decoded), as readings/s of that log.
//
// The machine is shared and noisy, so each iteration measures, back to
// back: the scan and one aggregator with GOMAXPROCS=1 (one core), then the
// sharded engine with every core (GOMAXPROCS=NumCPU); the figures reported
// are medians over the iterations, and the ratios (× scan, × one core) are
// medians of each iteration's own ratio:
//
//	go test -run '^$' -bench 'Replay$' -benchtime 5x -count 3 ./aggregate/replay/
//
// The log: 1,000 series on 10 devices, one reading per second each (event
// time = ingest time, in order), a tick per second, windows 10s, 1m and
// 1h with p50/p95/p99 sketches. Two record shapes: one reading per record
// (MQTT messages) and 10 per record (sensor polls).

const (
	benchSeries   = 1000
	benchReadings = 2_000_000
)

type benchLog struct {
	once     sync.Once
	dir      string
	readings int
	records  int
	err      error
}

var benchLogs = map[int]*benchLog{1: {}, 10: {}}

func TestMain(m *testing.M) {
	code := m.Run()
	for _, bl := range benchLogs {
		if bl.dir != "" {
			os.RemoveAll(bl.dir)
		}
	}
	os.Exit(code)
}

// logFor writes (once) the benchmark log with perRecord readings per
// record.
func logFor(b *testing.B, perRecord int) *benchLog {
	bl := benchLogs[perRecord]
	bl.once.Do(func() {
		bl.dir, bl.err = os.MkdirTemp("", "edged-bench-replay")
		if bl.err != nil {
			return
		}
		l, err := wal.Open(wal.Options{Dir: bl.dir, Sync: wal.SyncNever, SegmentSize: 64 << 20, MaxPendingBytes: 32 << 20})
		if err != nil {
			bl.err = err
			return
		}
		done := make(chan error, 1)
		stop := make(chan struct{})
		go func() {
			ctx, cancel := contextFrom(stop)
			defer cancel()
			done <- l.Run(ctx)
		}()
		names := make([][2]string, benchSeries)
		for i := range names {
			names[i] = [2]string{fmt.Sprintf("dev-%d", i%10), fmt.Sprintf("site/room-%03d/temperature", i)}
		}
		t0 := time.Now().Add(-48 * time.Hour).Truncate(time.Hour).UnixNano()
		var rec []byte
		batch := make([]edged.Reading, 0, perRecord)
		for k := 0; k < benchReadings; {
			sec := k / benchSeries
			now := t0 + int64(sec)*int64(time.Second)
			for i := k % benchSeries; i < benchSeries && k < benchReadings; i++ {
				batch = append(batch, edged.Reading{Device: names[i][0], Series: names[i][1], Unit: "°C",
					Value: 20 + float64((i*7+sec*13)%1000)/100, Time: now + int64(i)*1000, Ingest: now + int64(i)*1000})
				k++
				if len(batch) == perRecord || i == benchSeries-1 {
					rec, _ = edged.AppendRecord(rec[:0], batch)
					if _, err := l.Append(rec); err != nil {
						bl.err = err
						return
					}
					bl.records++
					batch = batch[:0]
				}
			}
			if k%benchSeries == 0 {
				if _, err := l.Append(edged.AppendTick(nil, now+int64(time.Second)-1)); err != nil {
					bl.err = err
					return
				}
				bl.records++
			}
		}
		bl.readings = benchReadings
		close(stop)
		if err := <-done; err != nil {
			bl.err = err
		}
		if err := l.Close(); err != nil && bl.err == nil {
			bl.err = err
		}
	})
	if bl.err != nil {
		b.Fatal(bl.err)
	}
	return bl
}

// scanRate is the reference: records/s of reading the whole log.
func scanRate(b *testing.B, l *wal.Log, passes int) float64 {
	best := 0.0
	for range passes {
		start := time.Now()
		r := l.NewReader(1)
		n := 0
		for {
			_, err := r.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			n++
		}
		r.Close()
		best = max(best, float64(n)/time.Since(start).Seconds())
	}
	return best
}

// replayWindows runs the engine over the whole log and returns the
// windows emitted.
func replayWindows(b *testing.B, l *wal.Log, e stream.Engine) int {
	windows := 0
	emit := func(aggregate.Window) { windows++ }
	r := l.NewReader(1)
	defer r.Close()
	for {
		rec, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			b.Fatal(err)
		}
		if err := e.ApplyEach(rec.Data, rec.LSN, emit, nil); err != nil {
			b.Fatal(err)
		}
	}
	if d, ok := e.(interface{ Drain(func(aggregate.Window)) }); ok {
		d.Drain(emit)
	}
	return windows
}

func BenchmarkReplay(b *testing.B) {
	for _, per := range []int{1, 10} {
		b.Run(fmt.Sprintf("readings-per-record=%d", per), func(b *testing.B) {
			bl := logFor(b, per)
			l, err := wal.OpenReadOnly(wal.Options{Dir: bl.dir})
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			opts := aggregate.Options{Windows: []time.Duration{10 * time.Second, time.Minute, time.Hour}}
			cores := runtime.NumCPU()
			defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
			perRecord := float64(bl.readings) / float64(bl.records)
			var scan, one, all, xScan, xOne []float64
			windows := 0
			timed := func(e stream.Engine) float64 {
				start := time.Now()
				windows = replayWindows(b, l, e)
				rate := float64(bl.readings) / time.Since(start).Seconds()
				if c, ok := e.(interface{ Close() error }); ok {
					c.Close()
				}
				return rate
			}
			b.ReportAllocs()
			for b.Loop() {
				runtime.GOMAXPROCS(1)
				s := scanRate(b, l, 1) * perRecord
				a, err := aggregate.New(opts)
				if err != nil {
					b.Fatal(err)
				}
				r1 := timed(a)
				scan, one, xScan = append(scan, s), append(one, r1), append(xScan, r1/s)
				if cores > 1 {
					runtime.GOMAXPROCS(cores)
					e, err := NewSharded(opts, cores)
					if err != nil {
						b.Fatal(err)
					}
					rn := timed(e)
					all, xOne = append(all, rn), append(xOne, rn/r1)
				}
			}
			b.ReportMetric(median(scan), "scan-readings/s")
			b.ReportMetric(median(one), "1core-readings/s")
			b.ReportMetric(median(xScan), "1core-x-scan")
			if cores > 1 {
				b.ReportMetric(median(all), fmt.Sprintf("%dcore-readings/s", cores))
				b.ReportMetric(median(xOne), fmt.Sprintf("%dcore-x-1core", cores))
			}
			b.ReportMetric(float64(windows), "windows")
			b.ReportMetric(0, "ns/op")
		})
	}
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(xs))
	if n := len(s); n%2 == 1 {
		return s[n/2]
	} else {
		return (s[n/2-1] + s[n/2]) / 2
	}
}

func contextFrom(stop <-chan struct{}) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		select {
		case <-stop:
		case <-ctx.Done():
		}
		cancel()
	}()
	return ctx, cancel
}

// BenchmarkReplayIntoViews: the whole of edged replay — log, engine,
// view rows, tstorage, checkpoints — into a fresh version each time, one
// reading per record. The view store, not the engine, bounds it: every
// new window row is looked up in the store first (the stream's
// idempotence) and written as 16 points.
func BenchmarkReplayIntoViews(b *testing.B) {
	bl := logFor(b, 1)
	dataDir := b.TempDir()
	if err := os.Symlink(bl.dir, Layout{dataDir}.WAL()); err != nil {
		b.Fatal(err)
	}
	opts := aggregate.Options{Windows: []time.Duration{10 * time.Second, time.Minute, time.Hour}}
	i := 0
	start := time.Now()
	var sum Summary
	for b.Loop() {
		i++
		r, err := New(Options{DataDir: dataDir, Version: fmt.Sprintf("b%d", i), Aggregate: opts, CheckpointEvery: time.Hour})
		if err != nil {
			b.Fatal(err)
		}
		if err := r.Run(context.Background()); err != nil {
			b.Fatal(err)
		}
		sum = r.Summary()
	}
	b.ReportMetric(float64(b.N*bl.readings)/time.Since(start).Seconds(), "readings/s")
	b.ReportMetric(float64(sum.Windows), "windows")
	b.ReportMetric(0, "ns/op")
}
