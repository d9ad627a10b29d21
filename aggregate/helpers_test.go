package aggregate

import (
	"encoding/binary"
	"errors"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/edged-io/edged"
)

// entry is one log record of a generated stream.
type entry struct {
	lsn  uint64
	rec  []byte
	rs   []edged.Reading // nil for a tick
	now  int64           // the tick's time
	tick bool
}

// streamConfig shapes a generated stream.
type streamConfig struct {
	series    int     // number of series
	records   int     // number of records
	perRecord int     // readings per record, at most
	disorder  float64 // fraction of readings displaced back in time (may be late)
	repeats   float64 // fraction of readings repeating an earlier identity
	bad       float64 // fraction of untrusted or invalid readings
	ticks     float64 // fraction of records that are ticks
	gaps      float64 // chance that a series goes silent for a while
}

var seriesNames = []struct{ device, series, unit string }{
	{"pi-1", "greenhouse/temperature", "°C"},
	{"pi-1", "greenhouse/humidity", "%"},
	{"pi-1", "greenhouse/temperature", "°F"},
	{"pi-2", "greenhouse/temperature", "°C"},
	{"pi-2", "workshop/pressure", "hPa"},
	{"pi-3", "lab/current", "A"},
	{"pi-3", "lab/voltage", ""},
	{"pi-3", "lab/counter", ""},
}

// genStream returns a random but reproducible log: readings records and
// ticks, with every kind of trouble the aggregator must handle.
func genStream(rng *rand.Rand, c streamConfig) []entry {
	now := t0
	clocks := make([]int64, c.series) // per-series event clock
	silentUntil := make([]int64, c.series)
	for i := range clocks {
		clocks[i] = t0 + rng.Int64N(int64(10*time.Second))
	}
	var seen []edged.Reading
	var out []entry
	for lsn := uint64(1); len(out) < c.records; lsn++ {
		now += rng.Int64N(int64(2 * time.Second))
		if rng.Float64() < c.ticks {
			out = append(out, entry{lsn: lsn, rec: edged.AppendTick(nil, now), now: now, tick: true})
			continue
		}
		n := 1 + rng.IntN(c.perRecord)
		var rs []edged.Reading
		for range n {
			si := rng.IntN(c.series)
			if now < silentUntil[si] {
				continue
			}
			if rng.Float64() < c.gaps {
				silentUntil[si] = now + rng.Int64N(int64(3*time.Minute))
			}
			clocks[si] = max(clocks[si], now-int64(time.Minute)) + rng.Int64N(int64(3*time.Second))
			name := seriesNames[si%len(seriesNames)]
			r := edged.Reading{
				Device: name.device, Series: name.series, Unit: name.unit,
				Time: clocks[si], Ingest: now, LSN: lsn,
				Value: genValue(rng, si),
			}
			switch p := rng.Float64(); {
			case p < c.repeats && len(seen) > 0:
				r = seen[len(seen)-1-rng.IntN(min(len(seen), 50))]
				r.LSN, r.Ingest = lsn, now
				if rng.IntN(3) == 0 {
					r.Value += 1
				}
			case p < c.repeats+c.disorder:
				r.Time -= rng.Int64N(int64(20 * time.Second))
			case p < c.repeats+c.disorder+c.bad:
				switch rng.IntN(6) {
				case 0:
					r.Flags |= edged.ClockUnsynced
				case 1:
					r.Time = rng.Int64N(int64(48 * time.Hour)) // 1970
				case 2:
					r.Time = now + int64(10*time.Minute) + rng.Int64N(int64(time.Hour))
				case 3:
					r.Value = math.NaN()
				case 4:
					r.Value = math.Inf(1 - 2*rng.IntN(2))
				case 5:
					r.Time = math.MaxInt64 - rng.Int64N(1000)
				}
			}
			seen = append(seen, r)
			rs = append(rs, r)
		}
		if len(rs) == 0 {
			lsn--
			continue
		}
		rec, err := edged.AppendRecord(nil, rs)
		if err != nil {
			panic(err)
		}
		out = append(out, entry{lsn: lsn, rec: rec, rs: rs})
	}
	return out
}

// genValue draws from a per-series distribution, with zeros, negatives
// and wide ranges.
func genValue(rng *rand.Rand, si int) float64 {
	switch si % 5 {
	case 0:
		return 20 + 5*rng.NormFloat64()
	case 1:
		return math.Round(rng.Float64()*100) / 4 // many repeats, zeros
	case 2:
		return -math.Exp(rng.NormFloat64() * 3)
	case 3:
		if rng.IntN(2) == 0 {
			return rng.NormFloat64()
		}
		return 1000 + rng.NormFloat64()
	default:
		return float64(rng.IntN(7) - 3)
	}
}

// feed applies entries to a, failing the test through fatal on error.
func feed(a *Aggregator, es []entry, emit func(Window), fatal func(...any)) {
	for _, e := range es {
		if err := a.Apply(e.rec, e.lsn, emit); err != nil {
			fatal(err)
		}
	}
}

func mustNew(o Options) *Aggregator {
	a, err := New(o)
	if err != nil {
		panic(err)
	}
	return a
}

func errorsIs(err, target error) bool { return errors.Is(err, target) }

// iterations scales a randomized test's iteration count down for -short
// and -race.
func iterations(n int) int {
	if testing.Short() || raceEnabled {
		return max(n/5, 2)
	}
	return n
}

// appendWindow encodes w exactly (floats by their bits), for comparing
// emitted sequences cheaply.
func appendWindow(b []byte, w Window) []byte {
	for _, s := range []string{w.Device, w.Series, w.Unit} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	for _, v := range []uint64{uint64(w.Size), uint64(w.Start), uint64(w.End), w.Count,
		math.Float64bits(w.Sum), math.Float64bits(w.Min), math.Float64bits(w.Max), math.Float64bits(w.Mean),
		uint64(w.First.Time), math.Float64bits(w.First.Value), uint64(w.Last.Time), math.Float64bits(w.Last.Value),
		w.Invalid, w.Untrusted, w.Late, w.Duplicates, w.Conflicts, w.CloseLSN} {
		b = binary.AppendUvarint(b, v)
	}
	b = binary.AppendUvarint(b, uint64(len(w.Quantiles)))
	for _, q := range w.Quantiles {
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(q.Q))
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(q.Value))
	}
	flags := byte(0)
	if w.Collapsed {
		flags |= 1
	}
	if w.Amended {
		flags |= 2
	}
	return append(b, flags)
}

// record returns an emit function that encodes every window into *b and
// keeps the windows in *ws.
func record(b *[]byte, ws *[]Window) func(Window) {
	return func(w Window) {
		*b = appendWindow(*b, w)
		*ws = append(*ws, w)
	}
}
