// Package aggregate is the speed layer's window engine: event-time tumbling
// windows over the readings of the write-ahead log, with count, exact sum,
// min, max, mean, first/last and sketch quantiles per window, per-series
// watermarks with allowed lateness, and an account of every reading not
// folded in. An Aggregator is a pure, deterministic function of the log
// records fed to it in LSN order (no goroutines, no clock, no I/O): feeding
// the same records always emits the same windows, and a checkpoint
// (MarshalBinary) restored and fed the rest emits exactly what an
// uninterrupted run does. That is what crash recovery and Kappa-style
// reprocessing (edged replay) rely on.
//
// The daemon calls Apply for every record: readings records fold readings
// in; tick records (edged.KindTick, written by the daemon on its wall
// clock) stand for processing time, so even decisions taken on the clock
// replay identically. Closed windows and amendments are passed to an emit
// callback, in a deterministic order.
//
// # Series and windows
//
// A series is a (device, series, unit) triple: the same series name on
// another device or in another unit is another series. Each Options.Windows
// size gives tumbling windows [Start, End) aligned to the Unix epoch (UTC):
// Start is a multiple of the size, a reading exactly at End belongs to the
// next window (Bounds). All sizes see the same accepted readings; the
// aggregator keeps state for the smallest size and builds each larger window
// by merging its smallest windows as they close, so a 1h window is exactly
// the merge of its 10s windows. A window with no accepted reading is never
// emitted (its refused readings are reported by amendments).
//
// # Watermark, lateness and closing
//
// Every series has a watermark, the latest event time accepted, and a
// frontier, at least watermark − Lateness. A reading whose event time is
// before the frontier is late: it is not folded into any window. A window
// closes once the frontier reaches its End (frontier ≥ End); it is emitted
// then, once, with CloseLSN the LSN of the record that moved the frontier.
// The frontier never moves back, so a closed window is never reopened and
// never emitted twice. Readings that arrive out of order but not before
// the frontier give the same windows as sorted input.
//
// Closing emits, per series, in order of End, then Size (the 10s window
// [50s, 60s) before the 1m window [0s, 1m)). Several series emit in order of
// (device, series, unit).
//
// # Duplicates and conflicts
//
// The identity of a reading is its series and event time. A reading with
// the identity of an accepted one is a duplicate if its value is equal (-0
// equals +0) and a conflict otherwise; either is dropped, the first value
// wins, and it is counted (Duplicates, Conflicts) in the window it belongs
// to. Identities are remembered from the frontier to the watermark: earlier
// readings are late anyway. At most MaxPending are remembered per series; a
// series with more readings in its lateness has its frontier moved just
// past the oldest one remembered, shortening its effective lateness.
//
// # Idle series
//
// A series whose watermark no longer advances would keep its last windows
// open forever. Ticks close them: at a tick at processing time now, a
// series is idle if D = now − (the latest ingest time of its accepted
// readings) ≥ IdleAfter. Then every open window of the series ending at or
// before
//
//	H = watermark + (D − IdleAfter) − Lateness
//
// closes, with CloseLSN the tick's LSN, and the frontier moves to the End of
// the last window so closed (not to H: a series that resumes is not made
// late beyond the windows actually closed). H is where the frontier would be
// had the series kept producing readings whose event time advanced with
// processing time, delayed by IdleAfter: for a live sensor (event time ≈
// ingest time) a window closes about IdleAfter + Lateness after its End; a
// device uploading an hour-old backlog is judged against its own event
// time, not the tick's clock. Ticks also emit pending amendments. A
// negative IdleAfter disables idle closing.
//
// # Untrusted event times (the Raspberry Pi clock rule)
//
// A Raspberry Pi has no real-time clock: until NTP synchronises it, its
// clock starts at 1970, or at the last shutdown with fake-hwclock, and a
// device may send any timestamp. A reading is untrusted, and never folded
// into any window, if
//
//   - its source flagged it (edged.ClockUnsynced or edged.TimeAbsurd: the
//     daemon flags readings taken before its clock is synchronised), or
//   - its event time is before Options.MinTime (default 2020-01-01 UTC), or
//   - its event time is more than Options.MaxFuture (default 5m) ahead of
//     its ingest time, or
//   - its event time is outside the hard range [1900-01-01, 2200-01-01).
//
// An untrusted reading is counted (Untrusted) per series (Stats) and on the
// window its event time falls in, like any refused reading (see below):
// so readings taken before NTP sync show up as untrusted counts on 1970
// windows, or on the windows of the last shutdown, never in the current
// ones. Readings outside the hard range are counted only per series. A
// reading up to MaxFuture ahead is trusted and moves the watermark: readings
// of the same series more than Lateness behind it are then late.
// Aggregator.Untrusted applies the rule, for the batch layer to leave out
// the same readings.
//
// A NaN or ±Inf value is Invalid: counted the same way, never folded in.
//
// # Accounting and amendments
//
// Each refused reading is counted under exactly one reason, the first that
// applies: Invalid, Untrusted, Late, Duplicates, Conflicts. It is counted on
// the window of every size that holds its event time: in that window's own
// emission while the window is open (a window is open from its first
// accepted reading until it closes), otherwise in an amendment. An
// amendment is a Window with Amended set, only Accounting filled in and
// Count zero; CloseLSN is the LSN of the record that emitted it. Amendments
// are kept per series, one per window and size however many readings they
// count, and emitted at the next tick in order of End, then Size; a series
// left with more than 64 by a record emits them at the end of that record
// (each Add counts as a record). Accounting for a window that has not opened yet
// (a future or never-opened window) is taken into the window if it opens
// before the next tick. Amendments count readings in addition to what
// earlier emissions of the same window reported, so for every window and
// size:
//
//	Count + Invalid + Untrusted + Late + Duplicates + Conflicts, summed over
//	its emission and all its amendments = the readings in the log whose event
//	time falls in it
//
// which is what lets the batch layer explain every difference between its
// exact aggregates and the edge's. Amendments are deterministic like
// everything else: replay emits the same ones at the same LSNs. A record
// gives a window at most one emission and at most one amendment, the
// emission first, so (series, size, start, CloseLSN, Amended) identifies
// each; a consumer that has applied an event has applied everything before
// it for that window.
//
// # Aggregates
//
// Count, Min, Max, First and Last (the readings with the earliest and
// latest event time) are exact. Sum is exact: values are added into a
// fixed-point accumulator wide enough for any float64 (a Kulisch
// accumulator), and the total is rounded once to the nearest float64. So
// Sum is the correctly rounded sum, better than a compensated (Kahan or
// Neumaier) sum, and it does not depend on the arrival order or on how
// windows were merged. Mean is Sum / Count.
//
// # Quantiles
//
// Quantiles come from a mergeable sketch with relative-error bound
// α = Options.RelativeAccuracy (default 1 %), DDSketch-style: values are
// counted in buckets whose bounds are within a factor (1+α)/(1−α), one set
// of buckets for positive values, one for negative, and a count of zeros;
// a bucket is reported by the point within α of both its bounds. The exact
// quantile it refers to is the nearest-rank one, the ⌈q·n⌉-th smallest
// accepted value (ExactQuantile; the element Flux's quantile(method:
// "exact_selector") picks). For every reported quantile q̂ of a window
// that is not Collapsed,
//
//	|q̂ − x| ≤ α·|x|,  x the exact quantile
//
// for positive and negative values alike, exact for zero, and exact for
// ranks 1 and n (the min and max), up to float64 rounding in computing a
// bucket's representative (a few units in the last place; values below
// 2^-1022 in magnitude are subnormal and have an absolute error up to
// 2^-1074). Estimates are also clamped to [Min, Max]. Bucket indexes are
// computed with integer arithmetic only, so sketches are identical on
// every architecture.
//
// Each set of buckets spans at most Options.MaxBuckets buckets, by default
// enough for a ratio of 2^51 ≈ 2·10^15 between the largest and the smallest
// magnitude (2048 buckets at α = 1 %, 40 per power of two). When a window's
// magnitudes of one sign span more, the smallest are folded into the lowest
// bucket kept, the result still independent of arrival order and merges,
// and the window is Collapsed: a quantile whose exact value falls among the
// folded magnitudes is reported as that bucket's value, so its error is
// bounded by about (largest magnitude of its sign) · 2^-51 instead (in
// general 2^-(MaxBuckets−1)/B, B the buckets per power of two).
//
// # Checkpoints and replay
//
// MarshalBinary encodes the whole state (versioned, with its options and a
// CRC-32C; the bytes are a function of the state alone) and covers the log
// up to LastLSN. To recover: New with the same options, UnmarshalBinary,
// then Apply every record after LastLSN; Apply refuses records at or below
// it (ErrAlreadyApplied). A checkpoint taken with other options is refused
// (ErrCheckpointOptions): recompute by replaying the log instead.
//
// # Memory
//
// Measured at the defaults with sensors reading once a second (see
// BenchmarkAdd): about 9 KiB of heap per series, recycled windows included,
// and 0.7 KiB of checkpoint. Series are never forgotten, since a forgotten
// watermark could reopen a closed window. What bounds a series' state: open
// windows of each size at most Lateness/size + 2, remembered readings at
// most MaxPending (16 bytes each), pending amendments at most 64, and each
// window at about 0.5 KiB plus its sketch, at most 2 × MaxBuckets × 8 bytes
// (8 bytes per bucket between a window's smallest and largest value: about
// 40 buckets for values within a factor of 2 at α = 1 %).
package aggregate
