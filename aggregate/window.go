package aggregate

import (
	"strings"
	"time"
)

// Window is what the aggregator emits: either a closed window with its
// aggregates and accounting, emitted once, or an amendment (Amended) that
// carries only accounting for readings refused after, or outside, the
// window's emission. See the package documentation.
type Window struct {
	// Device, Series and Unit identify the series.
	Device, Series, Unit string
	// Size is the window's length; Start and End its bounds in ns since
	// the epoch: [Start, End).
	Size       time.Duration
	Start, End int64

	// Count is the number of readings folded in. Zero in amendments.
	Count uint64
	// Sum is the exact sum of the values, rounded once to float64.
	Sum float64
	// Min, Max and Mean (Sum/Count) of the values.
	Min, Max, Mean float64
	// First and Last are the readings with the earliest and the latest
	// event time.
	First, Last Point
	// Quantiles are the sketch's estimates for Options.Quantiles, in
	// ascending order of Q. Each Value is within α·|x| of the exact
	// quantile x (see ExactQuantile) unless Collapsed.
	Quantiles []Quantile
	// Collapsed reports that the values' magnitudes spanned more than the
	// sketch's range and the smallest were folded into one bucket (see
	// the package documentation for the bound that then applies).
	Collapsed bool

	// Accounting counts the readings of this window that were not folded
	// in, by reason.
	Accounting
	// CloseLSN is the LSN of the record whose processing closed the window
	// or, for an amendment, emitted it.
	CloseLSN uint64
	// Amended marks an amendment: accounting only, to be added to the
	// window's emission and earlier amendments.
	Amended bool
}

// SizeName names a window size compactly, as topics, tags and reports
// write it: "10s", "1m", "1h", "1h30m", "500ms" (time.Duration's String
// without the zero tails "0s" and "0m").
func SizeName(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// Point is one reading's event time (ns) and value.
type Point struct {
	Time  int64
	Value float64
}

// Quantile is the estimate Value of the Q-quantile.
type Quantile struct {
	Q, Value float64
}

// Accounting counts readings that were not folded into a window, by the
// reason they were refused. Each refused reading is counted once, under
// the first reason that applies, in this order.
type Accounting struct {
	// Invalid: the value is NaN or ±Inf.
	Invalid uint64
	// Untrusted: the event time is flagged by the source or fails the
	// clock rule.
	Untrusted uint64
	// Late: the event time was before the series' frontier.
	Late uint64
	// Duplicates: a reading of the same identity and value was accepted.
	Duplicates uint64
	// Conflicts: a reading of the same identity with another value was
	// accepted; the first value wins.
	Conflicts uint64
}

func (a *Accounting) merge(o *Accounting) {
	a.Invalid += o.Invalid
	a.Untrusted += o.Untrusted
	a.Late += o.Late
	a.Duplicates += o.Duplicates
	a.Conflicts += o.Conflicts
}

// Total is the number of refused readings.
func (a Accounting) Total() uint64 {
	return a.Invalid + a.Untrusted + a.Late + a.Duplicates + a.Conflicts
}

// reason is a field of Accounting.
type reason uint8

const (
	reasonInvalid reason = iota
	reasonUntrusted
	reasonLate
	reasonDuplicate
	reasonConflict
)

func (a *Accounting) count(r reason) {
	switch r {
	case reasonInvalid:
		a.Invalid++
	case reasonUntrusted:
		a.Untrusted++
	case reasonLate:
		a.Late++
	case reasonDuplicate:
		a.Duplicates++
	case reasonConflict:
		a.Conflicts++
	}
}

// SeriesStats is the state and the totals of one series.
type SeriesStats struct {
	Device, Series, Unit string
	// Accepted counts the readings folded into windows; Accounting the
	// refused ones, whether or not their windows could carry them.
	Accepted uint64
	Accounting
	// Watermark is the latest event time accepted (meaningless while
	// Accepted is 0). Frontier: readings before it are late, windows that
	// end at or before it are closed. LastIngest is the latest ingest time
	// of an accepted reading.
	Watermark, Frontier, LastIngest int64
	// OpenWindows counts the windows (all sizes) holding state;
	// Remembered the readings kept for duplicate detection; Pending the
	// amendments waiting for the next tick.
	OpenWindows, Remembered, Pending int
}

// ExactQuantile returns the exact q-quantile that the sketch's bound
// refers to: the nearest-rank quantile sorted[k−1], k = ⌈q·n⌉ with the
// product q·n rounded to float64, clamped to [1, n]; the smallest value
// such that at least a fraction q of the values are ≤ it. It picks the
// same element as Flux's quantile(method: "exact_selector").
// sorted must be in ascending order and not empty.
func ExactQuantile(sorted []float64, q float64) float64 {
	return sorted[rank(q, uint64(len(sorted)))-1]
}
