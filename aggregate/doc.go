// Package aggregate is the speed layer: event-time tumbling windows aligned
// to the UTC epoch, per-window count, compensated sum, min, max, mean,
// first/last and quantiles from a mergeable sketch, per-series watermarks
// with allowed lateness, accounting of late readings, duplicates and
// conflicts, checkpoints tied to a WAL position, and the local view store.
// It consumes the write-ahead log through a named cursor and can recompute
// any view by replaying the log.
//
// It arrives with the speed-layer issue; until then the package holds only
// this documentation.
package aggregate
