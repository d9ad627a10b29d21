package wal_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/edged-io/edged/wal"
)

// The benchmarks print each figure beside a reference measured in the same
// run on the same file system: the raw fsync rate of a single writer
// (write+fdatasync loop) and the raw sequential write bandwidth (1 MiB
// writes, one fdatasync). Run them with `make bench`.

// rawFsyncRate measures write(size)+fdatasync per second for d.
func rawFsyncRate(b *testing.B, dir string, size int, d time.Duration) float64 {
	f, err := os.OpenFile(filepath.Join(dir, "raw-fsync"), os.O_CREATE|os.O_TRUNC|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		b.Fatal(err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	buf := make([]byte, size)
	n, start := 0, time.Now()
	for time.Since(start) < d {
		if _, err := f.Write(buf); err != nil {
			b.Fatal(err)
		}
		if err := syscall.Fdatasync(int(f.Fd())); err != nil {
			b.Fatal(err)
		}
		n++
	}
	return float64(n) / time.Since(start).Seconds()
}

// rawWriteBandwidth measures bytes/s of sequential 1 MiB writes of total
// bytes followed by one fdatasync.
func rawWriteBandwidth(b *testing.B, dir string, total int64) float64 {
	f, err := os.OpenFile(filepath.Join(dir, "raw-write"), os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o640)
	if err != nil {
		b.Fatal(err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	buf := make([]byte, 1<<20)
	start := time.Now()
	for done := int64(0); done < total; done += int64(len(buf)) {
		if _, err := f.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
	if err := syscall.Fdatasync(int(f.Fd())); err != nil {
		b.Fatal(err)
	}
	return float64(total) / time.Since(start).Seconds()
}

func openBench(b *testing.B, dir string, policy wal.SyncPolicy) (*wal.Log, func()) {
	l, err := wal.Open(wal.Options{Dir: dir, Sync: policy, SegmentSize: 64 << 20, MaxPendingBytes: 32 << 20})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { l.Run(ctx); close(done) }()
	return l, func() { cancel(); <-done; l.Close() }
}

// BenchmarkGroupCommit: durable appends/s under fsync=always with many
// concurrent appenders, as a multiple of one writer's raw fsync rate.
func BenchmarkGroupCommit(b *testing.B) {
	for _, appenders := range []int{1, 8, 64} {
		for _, size := range []int{32, 256, 4096} {
			b.Run(fmt.Sprintf("appenders=%d/size=%d", appenders, size), func(b *testing.B) {
				dir := b.TempDir()
				ref := rawFsyncRate(b, dir, size, 300*time.Millisecond)
				l, stop := openBench(b, filepath.Join(dir, "wal"), wal.SyncAlways)
				defer stop()
				data := make([]byte, size)
				var next atomic.Int64
				b.SetBytes(int64(size))
				b.ResetTimer()
				start := time.Now()
				var wg sync.WaitGroup
				for range appenders {
					wg.Go(func() {
						for next.Add(1) <= int64(b.N) {
							if _, err := l.AppendSync(context.Background(), data); err != nil {
								b.Error(err)
								return
							}
						}
					})
				}
				wg.Wait()
				rate := float64(b.N) / time.Since(start).Seconds()
				b.StopTimer()
				st := l.Stats()
				b.ReportMetric(float64(st.Appends)/float64(st.Batches), "records/batch")
				b.ReportMetric(float64(st.SyncTime.Microseconds())/float64(st.Syncs), "µs/fsync")
				b.ReportMetric(rate, "appends/s")
				b.ReportMetric(ref, "raw-fsync/s")
				b.ReportMetric(rate/ref, "x-raw-fsync")
			})
		}
	}
}

// BenchmarkIntervalThroughput: bytes/s of 4 KiB records under
// fsync=interval until the last one is durable, as a fraction of raw
// sequential write bandwidth for the same volume.
func BenchmarkIntervalThroughput(b *testing.B) {
	const size = 4096
	dir := b.TempDir()
	data := make([]byte, size)
	b.SetBytes(size)
	l, stop := openBench(b, filepath.Join(dir, "wal"), wal.SyncInterval)
	defer stop()
	b.ResetTimer()
	start := time.Now()
	var last uint64
	for b.Loop() {
		lsn, err := l.Append(data)
		if err != nil {
			b.Fatal(err)
		}
		last = lsn
	}
	if err := l.WaitDurable(context.Background(), last); err != nil {
		b.Fatal(err)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	total := int64(b.N) * size
	ref := rawWriteBandwidth(b, dir, max(total, 64<<20))
	bw := float64(total) / elapsed.Seconds()
	b.ReportMetric(bw/1e6, "MB/s")
	b.ReportMetric(ref/1e6, "raw-MB/s")
	b.ReportMetric(bw/ref, "x-raw-write")
}

var scanDir struct {
	once sync.Once
	dir  string
	n    int
	err  error
}

// BenchmarkReplayScan: records/s and MB/s reading a log of 256 B records
// from the start (page cache warm), the rate at which recovery and replay
// consume the log. Run with -cpu 1 for the one-core figure.
func BenchmarkReplayScan(b *testing.B) {
	const size, n = 256, 1_000_000
	scanDir.once.Do(func() {
		scanDir.dir, scanDir.err = os.MkdirTemp("", "edged-bench-scan")
		if scanDir.err != nil {
			return
		}
		l, stop := openBench(b, scanDir.dir, wal.SyncNever)
		data := make([]byte, size)
		for range n {
			if _, err := l.Append(data); err != nil {
				scanDir.err = err
				break
			}
		}
		stop()
		scanDir.n = n
	})
	if scanDir.err != nil {
		b.Fatal(scanDir.err)
	}
	b.Cleanup(func() {}) // the directory is removed by TestMain-less cleanup below
	l, err := wal.OpenReadOnly(wal.Options{Dir: scanDir.dir})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	b.SetBytes(int64(scanDir.n) * (size + 8))
	b.ReportAllocs()
	start := time.Now()
	for b.Loop() {
		r := l.NewReader(1)
		count := 0
		for {
			_, err := r.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			count++
		}
		r.Close()
		if count != scanDir.n {
			b.Fatalf("scanned %d records, want %d", count, scanDir.n)
		}
	}
	b.ReportMetric(float64(b.N*scanDir.n)/time.Since(start).Seconds(), "records/s")
}

// BenchmarkOpenAfterCrash: time from Open to ready-to-append for a 1 GiB
// log whose writer died mid-write (a torn tail in the active segment).
// Open scans only the active segment, so the figure is independent of the
// log's size; the reference is a full scan of the same log.
func BenchmarkOpenAfterCrash(b *testing.B) {
	const size, total = 4096, 1 << 30
	dir := b.TempDir()
	l, stop := openBench(b, dir, wal.SyncNever)
	data := make([]byte, size)
	for range total / size {
		if _, err := l.Append(data); err != nil {
			b.Fatal(err)
		}
	}
	stop()
	st := l.Stats()
	tail := st.Segments[len(st.Segments)-1].Path
	tear := func() {
		f, err := os.OpenFile(tail, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			b.Fatal(err)
		}
		f.Write([]byte{200, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7}) // half a record
		f.Close()
	}
	var scan time.Duration
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		tear()
		b.StartTimer()
		l, err := wal.Open(wal.Options{Dir: dir})
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if l.Stats().TornTruncations != 1 {
			b.Fatal("the torn tail was not found")
		}
		if scan == 0 {
			start := time.Now()
			r := l.NewReader(1)
			for {
				if _, err := r.Next(); err != nil {
					break
				}
			}
			r.Close()
			scan = time.Since(start)
		}
		l.Close()
		b.StartTimer()
	}
	b.StopTimer()
	b.ReportMetric(float64(st.Bytes)/(1<<20), "MiB-log")
	b.ReportMetric(float64(scan.Milliseconds()), "ms-full-scan")
	// Once more with a cold page cache, when this process may drop it (root).
	tear()
	syscall.Sync()
	if err := os.WriteFile("/proc/sys/vm/drop_caches", []byte("3"), 0); err != nil {
		b.Logf("cold-cache figure not measured: %v", err)
		return
	}
	start := time.Now()
	l, err := wal.Open(wal.Options{Dir: dir})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(time.Since(start).Microseconds())/1000, "ms-cold-open")
	l.Close()
}
