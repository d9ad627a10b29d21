package alerts

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/edged-io/edged"
)

// benchRules are five rules, one of each raw kind, that every series
// matches and no reading of the benchmark trips: the steady state, where
// the hot path must not allocate.
var benchRules = []Rule{
	{Name: "hot", Series: "room-*/*", Above: f(1000), For: sec(10)},
	{Name: "cold", Series: "*/temperature", Below: f(-1000)},
	{Name: "rise", Series: "*/*", Device: "pi-*", RateAbove: f(1e6)},
	{Name: "fall", Series: "room-*/temperature", RateBelow: f(-1e6)},
	{Name: "gone", Series: "*/*", Absent: Duration(time.Hour)},
}

// benchFleet is n series, each reading once a second, round-robin.
type benchFleet struct {
	rs     []edged.Reading
	values []float64
	i      int
}

func newBenchFleet(n int) *benchFleet {
	f := &benchFleet{rs: make([]edged.Reading, n), values: make([]float64, 4096)}
	for i := range f.rs {
		f.rs[i] = edged.Reading{Device: fmt.Sprintf("pi-%d", i/10), Series: fmt.Sprintf("room-%d/temperature", i%10)}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range f.values {
		f.values[i] = 20 + rng.NormFloat64()
	}
	return f
}

func (f *benchFleet) next() *edged.Reading {
	r := &f.rs[f.i%len(f.rs)]
	r.Time = t0 + int64(f.i/len(f.rs))*int64(time.Second)
	r.Ingest = r.Time
	r.Value = f.values[f.i&4095]
	r.LSN = uint64(f.i + 1)
	f.i++
	return r
}

// BenchmarkReading: readings through an engine with 1000 series × 5
// matching rules, none transitioning (every reading evaluates 4 threshold
// or rate instances and refreshes 1 absence timer).
func BenchmarkReading(b *testing.B) {
	const n = 1000
	e := mustNew(b, benchRules, Options{})
	fl := newBenchFleet(n)
	emit := func(Event) { b.Fatal("unexpected event") }
	for range 2 * n { // every series seen, rate memory set
		e.Reading(fl.next(), emit)
	}
	b.ReportAllocs()
	for b.Loop() {
		e.Reading(fl.next(), emit)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "readings/s")
}

// BenchmarkTick: one tick over the same 1000 series × 5 rules.
func BenchmarkTick(b *testing.B) {
	const n = 1000
	e := mustNew(b, benchRules, Options{})
	fl := newBenchFleet(n)
	for range 2 * n {
		e.Reading(fl.next(), nil)
	}
	lsn := uint64(fl.i)
	now := fl.rs[0].Ingest
	b.ReportAllocs()
	for b.Loop() {
		lsn++
		now += int64(time.Millisecond)
		e.Tick(now, lsn, func(Event) { b.Fatal("unexpected event") })
	}
}
