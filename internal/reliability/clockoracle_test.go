package reliability

import (
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"path/filepath"
	"time"

	"github.com/edged-io/edged"
	"github.com/edged-io/edged/wal"
)

// walEach calls fn for every record of the log in dataDir/wal, in order:
// rs for a readings record, else tick (rs nil) for a tick.
func walEach(dataDir string, fn func(lsn uint64, tick int64, rs []edged.Reading) error) error {
	l, err := wal.OpenReadOnly(wal.Options{Dir: filepath.Join(dataDir, "wal")})
	if err != nil {
		return err
	}
	defer l.Close()
	r := l.NewReader(1)
	defer r.Close()
	for {
		rec, err := r.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		switch edged.Kind(rec.Data) {
		case edged.KindTick:
			now, err := edged.DecodeTick(rec.Data)
			if err != nil {
				return fmt.Errorf("record %d: %w", rec.LSN, err)
			}
			if err := fn(rec.LSN, now, nil); err != nil {
				return err
			}
		case edged.KindReadings:
			rs, err := edged.DecodeRecord(nil, rec.Data, rec.LSN)
			if err != nil {
				return fmt.Errorf("record %d: %w", rec.LSN, err)
			}
			if err := fn(rec.LSN, 0, rs); err != nil {
				return err
			}
		}
	}
}

// The classes of a reading under the rule.
const (
	classAccepted = iota
	classLate
	classUntrusted
	classDuplicate
)

// clockOracle applies the aggregator's documented rule (aggregate package
// doc: "Untrusted event times", "Watermark, lateness and closing",
// "Duplicates and conflicts", "Idle series") to the log, record by
// record, and keeps what each window must hold.
type clockOracle struct {
	sizes                     []int64
	late, idle                int64
	minTime, maxFuture        int64
	hardMin, hardMax          int64
	series                    map[string]*oracleSeries
	win                       map[oracleKey]*oracleWindow
	readings, untrustedPoints map[Identity]Point
}

type oracleSeries struct {
	hasWM                    bool
	wm, frontier, lastIngest int64
	ids                      map[int64]float64 // accepted event times not before the frontier
	open                     map[[2]int64]bool // (size index, start) of windows with accepted readings, not closed
}

type oracleKey struct {
	series string
	size   int
	start  int64
}

// oracleWindow is what a window must hold.
type oracleWindow struct {
	agg                  Agg
	sum                  *big.Rat
	late, untrusted, dup int
	open                 bool // set by windows(): not closed when the log ends
}

func newClockOracle(sizes []time.Duration, lateness, idle time.Duration) *clockOracle {
	o := &clockOracle{late: int64(lateness), idle: int64(idle), maxFuture: int64(5 * time.Minute),
		minTime: time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano(),
		hardMin: time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano(),
		hardMax: time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano(),
		series:  map[string]*oracleSeries{}, win: map[oracleKey]*oracleWindow{},
		readings: map[Identity]Point{}, untrustedPoints: map[Identity]Point{}}
	for _, s := range sizes {
		o.sizes = append(o.sizes, int64(s))
	}
	return o
}

func alignNs(t, size int64) int64 { return t - ((t%size)+size)%size }

func (o *clockOracle) window(series string, k int, t int64) *oracleWindow {
	key := oracleKey{series, k, alignNs(t, o.sizes[k])}
	w := o.win[key]
	if w == nil {
		w = &oracleWindow{}
		o.win[key] = w
	}
	return w
}

// add classifies r and records it.
func (o *clockOracle) add(r edged.Reading) int {
	s := o.series[r.Series]
	if s == nil {
		s = &oracleSeries{frontier: math.MinInt64, ids: map[int64]float64{}, open: map[[2]int64]bool{}}
		o.series[r.Series] = s
	}
	t := r.Time
	id := Identity{r.Series, t / 1e6}
	refuse := func(class int) int {
		if t >= o.hardMin && t < o.hardMax {
			for k := range o.sizes {
				w := o.window(r.Series, k, t)
				switch class {
				case classLate:
					w.late++
				case classUntrusted:
					w.untrusted++
				case classDuplicate:
					w.dup++
				}
			}
		}
		if class == classUntrusted {
			o.untrustedPoints[id] = Point{Value: r.Value, Copies: 1}
		} else {
			o.readings[id] = Point{Value: r.Value, Copies: 1}
		}
		return class
	}
	switch {
	case r.Flags.Untrusted() || t < o.minTime || t >= o.hardMax || t > r.Ingest+o.maxFuture:
		return refuse(classUntrusted)
	case !s.hasWM:
		s.lastIngest = r.Ingest
	case t < s.frontier:
		return refuse(classLate)
	case t <= s.wm:
		if _, dup := s.ids[t]; dup {
			return refuse(classDuplicate)
		}
		s.lastIngest = max(s.lastIngest, r.Ingest)
	default:
		s.lastIngest = max(s.lastIngest, r.Ingest)
	}
	o.readings[id] = Point{Value: r.Value, Copies: 1}
	s.ids[t] = r.Value
	for k, size := range o.sizes {
		w := o.window(r.Series, k, t)
		if w.agg.Count == 0 {
			w.agg.Min, w.agg.Max = r.Value, r.Value
		}
		w.agg.Count++
		if w.sum == nil {
			w.sum = new(big.Rat)
		}
		w.agg.Sum, _ = w.sum.Add(w.sum, new(big.Rat).SetFloat64(r.Value)).Float64() // exact, rounded once, as edged's
		w.agg.Min, w.agg.Max = math.Min(w.agg.Min, r.Value), math.Max(w.agg.Max, r.Value)
		s.open[[2]int64{int64(k), alignNs(t, size)}] = true
	}
	if !s.hasWM || t > s.wm {
		s.hasWM, s.wm = true, t
		if f := t - o.late; f > s.frontier {
			o.advance(s, f)
		}
	}
	return classAccepted
}

// advance moves the frontier: windows ending at or before it close.
func (o *clockOracle) advance(s *oracleSeries, f int64) {
	s.frontier = f
	for t := range s.ids {
		if t < f {
			delete(s.ids, t)
		}
	}
	for w := range s.open {
		if w[1]+o.sizes[w[0]] <= f {
			delete(s.open, w)
		}
	}
}

// tick is a logged processing-time instant: idle series close the windows
// ending by watermark + (silence − IdleAfter) − Lateness.
func (o *clockOracle) tick(now int64) {
	for _, s := range o.series {
		if !s.hasWM {
			continue
		}
		silent := now - s.lastIngest
		if silent < o.idle {
			continue
		}
		h := s.wm + (silent - o.idle) - o.late
		end := int64(math.MinInt64)
		for w := range s.open {
			if e := w[1] + o.sizes[w[0]]; e <= h && e > end {
				end = e
			}
		}
		if end > s.frontier {
			o.advance(s, end)
		}
	}
}

// windows returns what each window of a series and size index must hold,
// by start (ns); windows still open when the log ended are marked open.
func (o *clockOracle) windows(series string, k int) map[int64]*oracleWindow {
	out := map[int64]*oracleWindow{}
	s := o.series[series]
	for key, w := range o.win {
		if key.series != series || key.size != k {
			continue
		}
		w.open = s != nil && s.open[[2]int64{int64(k), key.start}]
		out[key.start] = w
	}
	return out
}

// central returns what InfluxDB must hold: edged_reading and
// edged_untrusted.
func (o *clockOracle) central() (readings, untrusted map[Identity]Point) {
	return o.readings, o.untrustedPoints
}
