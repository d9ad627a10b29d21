package aggregate

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"

	"github.com/edged-io/edged"
)

// fleet simulates n series each reading once a second (event time = ingest
// time, jittered within the lateness), round-robin: the steady state of a
// daemon with n sensors.
type fleet struct {
	rs     []edged.Reading
	values []float64
	jitter []int64
	i      int
}

func newFleet(n int) *fleet {
	f := &fleet{rs: make([]edged.Reading, n), values: make([]float64, 4096), jitter: make([]int64, 4096)}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range f.rs {
		f.rs[i] = edged.Reading{Device: fmt.Sprintf("pi-%d", i/10), Series: fmt.Sprintf("room-%d/temperature", i%10), Unit: "°C"}
	}
	for i := range f.values {
		f.values[i] = 20 + 5*rng.NormFloat64()
		f.jitter[i] = rng.Int64N(int64(2 * time.Second))
	}
	return f
}

// next returns the next reading.
func (f *fleet) next() *edged.Reading {
	r := &f.rs[f.i%len(f.rs)]
	round := int64(f.i / len(f.rs))
	r.Time = t0 + round*int64(time.Second) + f.jitter[f.i&4095]
	r.Ingest = r.Time
	r.Value = f.values[(f.i*7)&4095]
	r.LSN = uint64(f.i + 1)
	f.i++
	return r
}

func heapInUse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// BenchmarkAdd: readings through Add with 1,000 series, windows of 10s, 1m
// and 1h and quantiles p50/p95/p99 (the defaults), in steady state (a
// simulated hour has passed, so windows of every size are closing).
// Reports readings/s, the heap per series and the checkpoint per series.
func BenchmarkAdd(b *testing.B) {
	for _, n := range []int{100, 1000} {
		b.Run(fmt.Sprintf("series=%d", n), func(b *testing.B) {
			f := newFleet(n)
			before := heapInUse()
			a := mustNew(Options{})
			windows := 0
			emit := func(Window) { windows++ }
			for range n * 3660 {
				a.Add(*f.next(), emit)
			}
			heap := heapInUse() - before
			cp, _ := a.MarshalBinary()
			b.ReportAllocs()
			for b.Loop() {
				a.Add(*f.next(), emit)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "readings/s")
			b.ReportMetric(float64(heap)/float64(n), "heap-B/series")
			b.ReportMetric(float64(len(cp))/float64(n), "checkpoint-B/series")
		})
	}
}

// BenchmarkAddReference is the reference for BenchmarkAdd, measured in the
// same run: the least any per-series aggregator does with a reading (find
// its series by name in a map, update count, sum, min and max), on the same
// fleet. The ratio of the two is the figure to compare across machines.
func BenchmarkAddReference(b *testing.B) {
	type acc struct {
		n             uint64
		sum, min, max float64
	}
	for _, n := range []int{100, 1000} {
		b.Run(fmt.Sprintf("series=%d", n), func(b *testing.B) {
			f := newFleet(n)
			m := map[string]*acc{}
			var key []byte
			b.ReportAllocs()
			for b.Loop() {
				r := f.next()
				key = appendKey(key[:0], r.Device, r.Series, r.Unit)
				a := m[string(key)]
				if a == nil {
					a = &acc{min: r.Value, max: r.Value}
					m[string(key)] = a
				}
				a.n++
				a.sum += r.Value
				a.min = min(a.min, r.Value)
				a.max = max(a.max, r.Value)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "readings/s")
		})
	}
}

// BenchmarkApply: the same through Apply, 10 readings a record, decoding
// included (edged.DecodeRecord copies the three names of every reading).
func BenchmarkApply(b *testing.B) {
	const n = 1000
	f := newFleet(n)
	a := mustNew(Options{})
	emit := func(Window) {}
	mkrec := func() []byte {
		var rs [10]edged.Reading
		for i := range rs {
			rs[i] = *f.next()
		}
		rec, _ := edged.AppendRecord(nil, rs[:])
		return rec
	}
	// Records are prepared ahead: the benchmark measures Apply alone.
	recs := make([][]byte, 4096)
	lsn := uint64(0)
	for range n * 3660 / 10 {
		lsn++
		_ = a.Apply(mkrec(), lsn, emit)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if i%len(recs) == 0 {
			b.StopTimer()
			for j := range recs {
				recs[j] = mkrec()
			}
			b.StartTimer()
		}
		lsn++
		if err := a.Apply(recs[i%len(recs)], lsn, emit); err != nil {
			b.Fatal(err)
		}
		i++
	}
	b.ReportMetric(float64(b.N*10)/b.Elapsed().Seconds(), "readings/s")
}

// BenchmarkCheckpoint: MarshalBinary and UnmarshalBinary of 1,000 series in
// steady state.
func BenchmarkCheckpoint(b *testing.B) {
	const n = 1000
	f := newFleet(n)
	a := mustNew(Options{})
	for range n * 3630 {
		a.Add(*f.next(), nil)
	}
	cp, _ := a.MarshalBinary()
	b.Run("marshal", func(b *testing.B) {
		b.ReportAllocs()
		buf := make([]byte, 0, len(cp))
		for b.Loop() {
			buf, _ = a.AppendBinary(buf[:0])
		}
		b.SetBytes(int64(len(cp)))
	})
	b.Run("unmarshal", func(b *testing.B) {
		b.ReportAllocs()
		r := mustNew(Options{})
		for b.Loop() {
			if err := r.UnmarshalBinary(cp); err != nil {
				b.Fatal(err)
			}
		}
		b.SetBytes(int64(len(cp)))
	})
}
