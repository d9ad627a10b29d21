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
//	                 fields: value (float), unit (string, absent when unknown),
//	                 lsn (int), ingest (int, ns), flags (int)
//	                 time: the reading's event time
//	edged_untrusted  the same, for readings whose event time the edge does not trust
//	                 (flagged by the source, or failing the aggregator's clock rule):
//	                 kept out of edged_reading so exact windows never mix them in
//	edged_window     tags: device, series, window ("10s", "1m", "1h", "1h30m"), view ("v1")
//	                 fields (float): count, sum, min, max, mean, first, last, p50, p95, p99
//	                 (those present), late, duplicates, conflicts, untrusted, close_lsn,
//	                 applied_lsn, alpha (the sketch's relative-error bound);
//	                 end (int, window end, ns); unit (string, absent when unknown)
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
// counted in the shipper's stats. Window fields that are NaN or ±Inf are
// left out.
//
// A window of the edge is complete centrally when its close_lsn ≤ the
// device's through_lsn: every reading the edge saw for it and every
// amendment to its accounting up to that LSN are in the store.
//
// After a restart the shipper does not know windows_lsn until it has
// shipped a through mark again; until then its progress points carry
// readings_lsn only, and the stored windows_lsn and through_lsn (true, and
// only ever growing) stay. Without an estimates log, progress carries
// readings_lsn and through_lsn = readings_lsn, and no windows_lsn.
//
// # Batches, cursors and progress
//
// The shipper reads both logs into one batch of line protocol (Options
// BatchSize, BatchBytes; a partial batch waits FlushInterval for more) and
// writes it with one gzip-compressed request through influxdb-client-go's
// blocking write API, which sends each request once. A record's points are
// never split across batches. Once the server confirms the batch, each
// log's cursor moves to the last record the batch covers; a crash before
// that only makes the restarted shipper send the same points again, which
// overwrites them. The progress point claims only what earlier batches
// confirmed: it rides in the next batch, or goes alone once the logs are
// drained.
//
// Rows of one window are shipped in log order, so the latest wins even
// when a batch holds several. A batch split by the error handling below
// is sent in order too.
//
// # Errors
//
// A failed write is classified by the server's answer:
//
//   - no answer, a timeout, 429, 5xx: the same request again, after an
//     exponential backoff with full jitter (BackoffMin, BackoffMax), or
//     after Retry-After when the server sends it.
//   - 400, 422 (a bad line, a field type conflict, a point outside the
//     retention policy): the request is bisected until the lines the
//     server refuses are isolated; the others are shipped, the refused
//     ones are written to the quarantine directory with the server's
//     message, counted, and skipped.
//   - 413: the request is halved, and later batches are kept under half
//     its size.
//   - 401, 403, 404, or an answer naming a missing database, retention
//     policy or bucket: shipping pauses (Shipper.Paused, Options.Alert,
//     one error in the log); nothing is skipped and the cursor stays; the
//     same request is re-sent with backoff until the server takes it.
//
// Names that line protocol cannot carry (control characters, an empty
// series, a backslash before a separator or at the end of a tag) are
// quarantined without being sent. The token is never logged, and is
// redacted from every error the shipper reports.
package ship
