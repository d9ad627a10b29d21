package aggregate

import (
	"encoding/binary"
	"hash/crc32"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/edged-io/edged"
)

var fuzzOptions = Options{Windows: []time.Duration{time.Second, 5 * time.Second}, Lateness: time.Second, IdleAfter: 3 * time.Second, MaxPending: 16, MaxBuckets: 64}

// fuzzStream is a short stream whose series the seeds share, so that
// mutated checkpoints and records meet existing state.
func fuzzStream() []entry {
	return genStream(rand.New(rand.NewPCG(7, 7)), streamConfig{series: 4, records: 40, perRecord: 3, disorder: 0.2, repeats: 0.1, bad: 0.1, ticks: 0.1})
}

// exercise feeds a restored aggregator more records and checks that its
// checkpoint round-trips byte for byte.
func exercise(t *testing.T, a *Aggregator, es []entry) {
	lsn := a.LastLSN()
	for _, e := range es {
		lsn++
		if err := a.Apply(e.rec, lsn, func(Window) {}); err != nil {
			t.Fatalf("Apply after restore: %v", err)
		}
	}
	a.Tick(math.MaxInt64, lsn+1, func(Window) {})
	a.Stats()
	b1, err := a.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var r Aggregator
	if err := r.UnmarshalBinary(b1); err != nil {
		t.Fatalf("own checkpoint refused: %v", err)
	}
	if b2, _ := r.MarshalBinary(); !slices.Equal(b1, b2) {
		t.Fatal("checkpoint does not round-trip")
	}
}

func checkpointSeeds(f *testing.F) {
	es := fuzzStream()
	for _, cut := range []int{0, 5, 20, len(es)} {
		for _, o := range []Options{fuzzOptions, {}} {
			a := mustNew(o)
			feed(a, es[:cut], nil, f.Fatal)
			b, _ := a.MarshalBinary()
			f.Add(b)
		}
	}
	f.Add([]byte(checkpointMagic))
	f.Add([]byte{})
}

// FuzzUnmarshalBinary: arbitrary bytes never panic; what is accepted can be
// used and round-trips. Each input is tried as is and with a valid
// checksum appended, so that mutations get past the CRC.
func FuzzUnmarshalBinary(f *testing.F) {
	checkpointSeeds(f)
	es := fuzzStream()[:10]
	f.Fuzz(func(t *testing.T, b []byte) {
		fixed := binary.LittleEndian.AppendUint32(slices.Clone(b), crc32.Checksum(b, castagnoli))
		for _, in := range [][]byte{b, fixed} {
			var a Aggregator
			if err := a.UnmarshalBinary(in); err != nil {
				continue
			}
			exercise(t, &a, es)
		}
	})
}

// FuzzApply: arbitrary records never panic, are refused without a change
// or applied; the state then still checkpoints and round-trips.
func FuzzApply(f *testing.F) {
	es := fuzzStream()
	for _, e := range es[:12] {
		f.Add(e.rec, int64(0))
	}
	rec, _ := edged.AppendRecord(nil, []edged.Reading{
		{Device: "pi-1", Series: "greenhouse/temperature", Unit: "°C", Time: math.MinInt64, Ingest: math.MaxInt64, Value: 1},
		{Device: "pi-1", Series: "greenhouse/temperature", Unit: "°C", Time: math.MaxInt64, Ingest: math.MinInt64, Value: math.Copysign(0, -1)},
		{Device: "pi-1", Series: "greenhouse/temperature", Unit: "°C", Time: hardMax - 1, Ingest: hardMax, Value: math.MaxFloat64},
	})
	f.Add(rec, int64(math.MaxInt64))
	f.Add(edged.AppendTick(nil, math.MinInt64), int64(math.MinInt64))
	f.Add([]byte{1, 0}, int64(0))
	f.Fuzz(func(t *testing.T, rec []byte, now int64) {
		a := mustNew(fuzzOptions)
		feed(a, es[:20], nil, t.Fatal)
		before, _ := a.MarshalBinary()
		lsn := a.LastLSN() + 1
		if err := a.Apply(rec, lsn, func(Window) {}); err != nil {
			if after, _ := a.MarshalBinary(); !slices.Equal(before, after) {
				t.Fatalf("refused record (%v) changed the state", err)
			}
		}
		a.Tick(now, lsn+1, func(Window) {})
		exercise(t, a, es[20:])
	})
}
