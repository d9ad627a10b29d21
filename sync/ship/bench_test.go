package ship

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	influxdb2 "github.com/influxdata/influxdb-client-go/v2"

	"github.com/edged-io/edged"
	"github.com/edged-io/edged/internal/servicetest"
	"github.com/edged-io/edged/wal"
)

// BenchmarkShip measures how fast a backlog drains into a real InfluxDB:
// 200,000 readings (100 series, records of 10 readings) from the cursor to
// the end, reported as points/s. The reference, measured in the same run,
// is the ceiling of client and server: the same client (blocking writes,
// gzip) sending the same lines, already encoded, in batches of the same
// size, one after the other. x_reference is the shipper's rate over it.
//
//	go test ./sync/ship -run '^$' -bench Ship -benchtime 1x
func BenchmarkShip(b *testing.B) {
	const (
		series  = 100
		perRec  = 10
		records = 20_000
		n       = records * perRec
	)
	srv := servicetest.StartInfluxd(b)
	l := testLog(b, filepath.Join(b.TempDir(), "wal"), wal.Options{SegmentSize: 64 << 20})
	var last uint64
	rs := make([]edged.Reading, perRec)
	var rec []byte
	for i := range records {
		for j := range rs {
			k := i*perRec + j
			rs[j] = reading(fmt.Sprintf("site/room%02d/sensor%03d", k%series/10, k%series), t0+int64(k/series)*int64(time.Second), float64(k%1000)/7)
		}
		var err error
		if rec, err = edged.AppendRecord(rec[:0], rs); err != nil {
			b.Fatal(err)
		}
		if last, err = l.Append(rec); err != nil {
			b.Fatal(err)
		}
	}
	if err := l.WaitDurable(context.Background(), last); err != nil {
		b.Fatal(err)
	}

	batches := encodeAll(b, l)
	b.ReportAllocs()
	b.ResetTimer()
	var took, refTook time.Duration
	var wire, raw uint64
	iter := 0
	for b.Loop() {
		// The reference just before each run, so that both see the same
		// machine (it is shared and its load varies).
		b.StopTimer()
		iter++
		refTook += reference(b, newDatabase(b, srv, fmt.Sprintf("ref%d", iter)), batches)
		db := newDatabase(b, srv, fmt.Sprintf("ship%d", iter))
		if err := l.SetCursor(DefaultCursor, 0); err != nil {
			b.Fatal(err)
		}
		s, err := New(Options{URL: db.URL, Token: db.Token, Bucket: db.bucket, Device: "pi", Readings: l})
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		b.StartTimer()
		start := time.Now()
		go func() { done <- s.Run(ctx) }()
		for {
			if c, _ := l.Cursor(DefaultCursor); c == last {
				break
			}
			time.Sleep(time.Millisecond)
		}
		took += time.Since(start)
		b.StopTimer()
		cancel()
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		st := s.Stats()
		if st.Readings != n {
			b.Fatalf("shipped %d readings, want %d", st.Readings, n)
		}
		wire, raw = wire+st.WireBytes, raw+st.Bytes
		b.StartTimer()
	}
	b.ReportMetric(float64(wire)/float64(n*iter), "wire_bytes/reading")
	b.ReportMetric(float64(raw)/float64(n*iter), "lp_bytes/reading")
	rate, ref := float64(n*iter)/took.Seconds(), float64(n*iter)/refTook.Seconds()
	b.ReportMetric(rate, "points/s")
	b.ReportMetric(ref, "ref_points/s")
	b.ReportMetric(rate/ref, "x_reference")
}

// encodeAll encodes the log's readings in batches of DefaultBatchSize.
func encodeAll(b *testing.B, l *wal.Log) []string {
	b.Helper()
	e := testEncoder()
	var dec edged.RecordDecoder
	var batches []string
	var bt batch
	r := l.NewReader(1)
	defer r.Close()
	for {
		rec, err := r.Next()
		if err != nil {
			break
		}
		rs, err := dec.Decode(nil, rec.Data, rec.LSN)
		if err != nil {
			b.Fatal(err)
		}
		for i := range rs {
			e.reading(&bt, &rs[i])
		}
		if bt.points() >= DefaultBatchSize {
			batches = append(batches, string(bt.buf))
			bt.reset()
		}
	}
	if bt.points() > 0 {
		batches = append(batches, string(bt.buf))
	}
	return batches
}

// reference writes the batches straight through the client (blocking,
// gzip), one after the other, and returns how long that took.
func reference(b *testing.B, db *influx, batches []string) time.Duration {
	b.Helper()
	c := influxdb2.NewClientWithOptions(db.URL, db.Token, influxdb2.DefaultOptions().SetUseGZip(true).SetMaxRetries(0))
	defer c.Close()
	w := c.WriteAPIBlocking("", db.bucket)
	start := time.Now()
	for _, body := range batches {
		if err := w.WriteRecord(context.Background(), body); err != nil {
			b.Fatal(err)
		}
	}
	return time.Since(start)
}
