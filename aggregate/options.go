package aggregate

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/edged-io/edged"
)

// Options configure an Aggregator. The zero value gives the defaults; every
// field's zero value means its default.
type Options struct {
	// Windows are the tumbling window sizes, aligned to the UTC epoch.
	// Each must be a multiple of the smallest, between 1ms and 7 days;
	// order does not matter. Default 10s, 1m, 1h.
	Windows []time.Duration
	// Lateness is how far behind the series' watermark a reading may be
	// and still be folded into its window. Default 5s; negative means
	// none (only readings at or after the watermark are on time). At most
	// 24h.
	Lateness time.Duration
	// IdleAfter is how long (processing time, as logged by ticks) a series
	// may go without an accepted reading before ticks close its windows.
	// Default 30s; negative means never.
	IdleAfter time.Duration
	// Quantiles reported for every window, each in [0, 1]; order does not
	// matter. Default 0.5, 0.95, 0.99. A non-nil empty slice reports none.
	Quantiles []float64
	// RelativeAccuracy is the sketch's bound α, in [0.0001, 0.5]: every
	// reported quantile is within α·|q| of the exact one, q. Default 0.01.
	RelativeAccuracy float64
	// MaxFuture is how far a reading's event time may be ahead of its
	// ingest time and still be trusted. Default 5m; at most 7 days.
	MaxFuture time.Duration
	// MinTime is the earliest trusted event time. Default 2020-01-01 UTC;
	// not before 1900 (the hard limit, see the package documentation).
	MinTime time.Time
	// MaxBuckets bounds each of a window sketch's two bucket arrays
	// (positive values, negative magnitudes); 8 bytes each. The default
	// spans magnitudes over a ratio of 2^51 ≈ 2·10^15 before the smallest
	// are folded: 2048 buckets at α = 1 %, about 20,000 at 0.1 %. Between
	// 64 and 262144.
	MaxBuckets int
	// MaxPending bounds how many accepted readings per series are
	// remembered for duplicate detection (16 bytes each): a series that
	// has more within its lateness has its frontier moved up (its
	// effective lateness shortened). Default 4096, between 16 and 1<<20.
	MaxPending int
}

// Defaults of the Options fields.
var (
	DefaultWindows   = []time.Duration{10 * time.Second, time.Minute, time.Hour}
	DefaultQuantiles = []float64{0.5, 0.95, 0.99}
	DefaultMinTime   = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
)

// Defaults of the Options fields.
const (
	DefaultLateness         = 5 * time.Second
	DefaultIdleAfter        = 30 * time.Second
	DefaultRelativeAccuracy = 0.01
	DefaultMaxFuture        = 5 * time.Minute
	DefaultMaxPending       = 4096
)

// Limits of the Options fields.
const (
	maxSizes     = 8
	maxQuantiles = 16
	maxWindow    = 7 * 24 * time.Hour
	maxBuckets   = 1 << 18
)

// The hard range of event times, whatever MinTime says: it keeps window
// arithmetic far from int64 overflow. A reading outside it is untrusted
// and counted only in its series' totals, not on any window.
var (
	hardMin = time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	hardMax = time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()
)

// ErrOptions reports invalid Options.
var ErrOptions = errors.New("aggregate: invalid options")

// Validate reports the first invalid field.
func (o *Options) Validate() error {
	_, err := o.normalize()
	return err
}

func optErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrOptions, fmt.Sprintf(format, args...))
}

// normalize returns o with defaults applied, windows and quantiles sorted,
// or the first invalid field.
func (o *Options) normalize() (Options, error) {
	n := *o
	if n.Windows == nil {
		n.Windows = DefaultWindows
	}
	n.Windows = slices.Clone(n.Windows)
	slices.Sort(n.Windows)
	if len(n.Windows) == 0 || len(n.Windows) > maxSizes {
		return n, optErr("Windows: %d sizes (want 1 to %d)", len(n.Windows), maxSizes)
	}
	for i, w := range n.Windows {
		if w < time.Millisecond || w > maxWindow {
			return n, optErr("Windows: %v is outside [1ms, %v]", w, maxWindow)
		}
		if w%n.Windows[0] != 0 {
			return n, optErr("Windows: %v is not a multiple of the smallest window %v", w, n.Windows[0])
		}
		if i > 0 && w == n.Windows[i-1] {
			return n, optErr("Windows: %v given twice", w)
		}
	}
	switch {
	case n.Lateness == 0:
		n.Lateness = DefaultLateness
	case n.Lateness < 0:
		n.Lateness = -1 // canonical "none"
	case n.Lateness > 24*time.Hour:
		return n, optErr("Lateness: %v is over 24h", n.Lateness)
	}
	switch {
	case n.IdleAfter == 0:
		n.IdleAfter = DefaultIdleAfter
	case n.IdleAfter < 0:
		n.IdleAfter = -1 // canonical "never"
	}
	if n.Quantiles == nil {
		n.Quantiles = DefaultQuantiles
	}
	n.Quantiles = slices.Clone(n.Quantiles)
	slices.Sort(n.Quantiles)
	if len(n.Quantiles) > maxQuantiles {
		return n, optErr("Quantiles: %d (at most %d)", len(n.Quantiles), maxQuantiles)
	}
	for i, q := range n.Quantiles {
		if !(q >= 0 && q <= 1) {
			return n, optErr("Quantiles: %v is outside [0, 1]", q)
		}
		if i > 0 && q == n.Quantiles[i-1] {
			return n, optErr("Quantiles: %v given twice", q)
		}
	}
	if n.RelativeAccuracy == 0 {
		n.RelativeAccuracy = DefaultRelativeAccuracy
	}
	if !(n.RelativeAccuracy >= 0.0001 && n.RelativeAccuracy <= 0.5) {
		return n, optErr("RelativeAccuracy: %v is outside [0.0001, 0.5]", n.RelativeAccuracy)
	}
	switch {
	case n.MaxFuture == 0:
		n.MaxFuture = DefaultMaxFuture
	case n.MaxFuture < 0 || n.MaxFuture > maxWindow:
		return n, optErr("MaxFuture: %v is outside (0, %v]", n.MaxFuture, maxWindow)
	}
	if n.MinTime.IsZero() {
		n.MinTime = DefaultMinTime
	}
	if y := n.MinTime.Year(); y < 1900 || y >= 2200 {
		return n, optErr("MinTime: %v is outside [1900, 2200)", n.MinTime)
	}
	n.MinTime = time.Unix(0, n.MinTime.UnixNano()).UTC()
	if n.MaxBuckets == 0 {
		// Span a magnitude ratio of 2^51.2: 2048 buckets at α = 1 %.
		m := newMapping(n.RelativeAccuracy)
		n.MaxBuckets = min(int(math.Ceil(51.2*float64(m.perBinade))), maxBuckets)
	}
	if n.MaxBuckets < 64 || n.MaxBuckets > maxBuckets {
		return n, optErr("MaxBuckets: %d is outside [64, %d]", n.MaxBuckets, maxBuckets)
	}
	if n.MaxPending == 0 {
		n.MaxPending = DefaultMaxPending
	}
	if n.MaxPending < 16 || n.MaxPending > 1<<20 {
		return n, optErr("MaxPending: %d is outside [16, 1048576]", n.MaxPending)
	}
	return n, nil
}

// lateness returns the allowed lateness in ns (0 for none).
func (o *Options) lateness() int64 { return max(int64(o.Lateness), 0) }

func untrusted(r *edged.Reading, minTime, maxFuture int64) bool {
	return r.Flags.Untrusted() || r.Time < minTime || r.Time >= hardMax ||
		r.Time > satAdd(r.Ingest, maxFuture)
}

// invalid reports a value no window can hold.
func invalid(v float64) bool { return math.IsNaN(v) || math.IsInf(v, 0) }

// satAdd returns a+b clamped to the int64 range.
func satAdd(a, b int64) int64 {
	s := a + b
	if (s > a) != (b > 0) {
		if b > 0 {
			return math.MaxInt64
		}
		return math.MinInt64
	}
	return s
}

// satSub returns a−b clamped to the int64 range.
func satSub(a, b int64) int64 {
	if b == math.MinInt64 {
		if a >= 0 {
			return math.MaxInt64
		}
		return a - b
	}
	return satAdd(a, -b)
}

// align returns the start of the window of size containing t (floor).
func align(t, size int64) int64 {
	m := t % size
	if m < 0 {
		m += size
	}
	return t - m
}

// Bounds returns the window of the given size that holds event time t:
// [start, end), aligned to the Unix epoch (UTC). A reading exactly at end
// belongs to the next window. t must be within the hard range (years 1900
// to 2200).
func Bounds(t int64, size time.Duration) (start, end int64) {
	start = align(t, int64(size))
	return start, start + int64(size)
}
