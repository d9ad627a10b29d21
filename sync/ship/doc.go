// Package ship tails the write-ahead log from its cursor and ships raw
// readings, closed-window edge estimates, gap records and a shipped-through
// progress marker to a central InfluxDB, idempotently (the WAL timestamp is
// the point's timestamp) and with its own retry and error taxonomy. The
// cursor advances only after the server confirms a batch.
//
// # Inputs
//
// Two logs on the edge feed the shipper, each read from its own cursor
// (named "shipper"):
//
//   - the readings log (data/wal): records of kind edged.KindReadings
//     become reading points; ticks are skipped; a wal.GapError (records
//     removed by the size quota before they were shipped) becomes a gap
//     point.
//   - the estimates log (data/estimates), written by aggregate/stream:
//     view.RecordRow records are window rows (cumulative: the latest row of
//     a window supersedes the earlier ones) and view.RecordThrough records
//     say the aggregator has processed the readings log through an LSN and
//     every row it produced up to there precedes the record.
//
// # Schema
//
// Every point has the tag device. Times are nanoseconds; the time of a
// point is chosen so that shipping it again overwrites it (InfluxDB keeps
// one point per measurement, tag set and time).
//
//	edged_reading    tags: device, series
//	                 fields: value (float), unit (string), lsn (int), ingest (int, ns), flags (int)
//	                 time: the reading's event time
//	edged_untrusted  the same, for readings whose event time the edge does not trust
//	                 (flagged by the source, or failing the aggregator's clock rule):
//	                 kept out of edged_reading so exact windows never mix them in
//	edged_window     tags: device, series, window ("10s", "1m", "1h"), view ("v1")
//	                 fields (float): count, sum, min, max, mean, first, last, p50, p95, p99
//	                 (those present), late, duplicates, conflicts, untrusted, close_lsn,
//	                 applied_lsn, alpha (the sketch's relative-error bound), end (window end, ns);
//	                 unit (string)
//	                 time: the window's start
//	edged_gap        fields: to_lsn (int), count (int, records), noticed (int, ns wall clock)
//	                 time: the first missing LSN, taken as nanoseconds since the epoch
//	edged_progress   fields: readings_lsn (int): every reading record ≤ it is shipped;
//	                 windows_lsn (int): every window row the aggregator produced for
//	                 records ≤ it is shipped; through_lsn (int) = min of the two;
//	                 updated (int, ns wall clock)
//	                 time: 0 (one point per device, overwritten)
//
// Readings whose value is NaN or ±Inf cannot be stored in InfluxDB: they
// are not shipped (the edge window counts them under untrusted) and are
// counted in the shipper's stats.
//
// A window of the edge is complete centrally when its close_lsn ≤ the
// device's through_lsn: every reading the edge saw for it and every
// amendment to its accounting up to that LSN are in the store.
package ship
