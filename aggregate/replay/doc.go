// Package replay recomputes views from the write-ahead log with another
// aggregate configuration — Kappa-style reprocessing, edged replay — into
// a new view version beside the one the daemon keeps writing. It is the
// live path run again: the same aggregate.Aggregator and the same
// stream.Stream (checkpoints, view rows, idempotence by applied_lsn), with
// a reader and an engine plugged in (stream.Options.NewReader, NewEngine).
//
// # Versions
//
// The views of one aggregate configuration are a version, in
// DATA/views/<version> (see aggregate/view): the daemon writes its
// aggregate.view (default v1), replay writes another (say v2). Each
// version has a manifest (version.json: source, configuration and its
// fingerprint, bounds, progress) and a stream checkpoint: DATA/aggregate
// for v1, where it always was, DATA/aggregate/<version> for the others
// (Layout). The daemon and replay use the same directory and format for a
// version, so a daemon switched to aggregate.view: v2 continues from the
// replay's checkpoint without recomputing, and a replay resumes from its
// own. A version holds windows of one configuration: replaying another
// into it is refused (ErrConfigChanged). One process writes a version at a
// time (view.LockVersion): a replay into the daemon's version is refused.
//
// # Reading the log beside a running daemon
//
// Replay opens the log with wal.OpenReadOnly, whether the daemon runs or
// not: it writes nothing there (no recovery, no cursor — its stream's
// cursor name is never persisted —, no retention), so it cannot disturb
// the daemon, and the log has no lock that would tell a stopped daemon
// from a running one. What that costs offline: a torn tail reads as the
// end of the log (the daemon truncates it at its next start), and a
// corrupt closed segment the daemon has not salvaged yet is skipped and
// counted as a gap.
//
// A read-only log is a snapshot: its segments and durable end as of
// opening, and the appends of another process never wake its readers. To
// follow the live tail (Options.Follow), the reader checks every Poll
// (250 ms) whether a segment was added or the last one grew (one ReadDir,
// one Stat) and, if so, opens the log again read-only (which scans the
// last segment) and goes on from where it was. What it reads is what the
// daemon's write call has handed to the kernel, which under fsync=interval
// may include a few milliseconds of records not yet fsynced: a power cut
// at that moment can make the daemon's log lose records the replay has
// counted.
//
// Retention does not wait for a replay (it has no cursor): records the
// daemon's quota removes before the replay reads them are reported as
// gaps. A replay is caught up once it has read everything that was durable
// when it last looked, less than a poll interval ago.
//
// # Bounds
//
// From and To bound the replay to a range of the log (Bound):
//
//   - an LSN: From is the first record replayed, To the last;
//   - a time, compared with each record's processing time — the ingest
//     time of a readings record's first reading, a tick's instant: the
//     replay starts at the first record at or after From, skipping the
//     segments last written before it, and ends before the first record
//     at or after To. Records in between are replayed whatever their
//     readings' event times.
//
// The end of a bounded replay is exact for the windows it emits: a window
// is emitted once its series' frontier has passed it, so no later record
// changes its aggregates (only late readings after To would add to its
// accounting, by amendments); windows still open at To are not emitted.
// The start is not: records before it may hold readings of the windows
// open there. So a replay that does not start at the first record of the
// log (From, or retention having removed the start) leaves out every
// window that starts before its start time — From's time, or the
// processing time of its first record — and counts them
// (Summary.Excluded); the manifest records the time (ExcludeBefore) so
// that a resumed replay applies the same cut. For sensors whose event time
// is their ingest time the windows kept are complete; readings backfilled
// with old timestamps, or stamped ahead of their ingest, can still make a
// kept window partial.
//
// # Resuming
//
// A replay checkpoints every CheckpointEvery and when it stops (end of
// log, bound, ctx): views first, then the checkpoint. Run again with the
// same configuration, it continues after the checkpoint; windows it emits
// again after a crash are merged by the view store (applied_lsn), exactly
// as after a crash of the daemon. The result is the same as an
// uninterrupted replay's.
//
// # Parallel replay
//
// Readings of different series are independent, so with Workers > 1 the
// engine is a Sharded one: series spread over that many aggregators, one
// goroutine each, fed in batches by the goroutine reading the log; it
// emits exactly what one aggregator does, in the same order, and
// checkpoints in the aggregator's format (so a sharded replay, a single
// one and the daemon continue from each other's checkpoints).
//
// # Alerts
//
// With an Observer (an AlertReport built on NEW_CONFIG's rules), the alert
// engine sees the same readings, windows and ticks as it would in the
// daemon, and its transitions go to a file as JSON lines; nothing is
// published. The observer needs the readings in log order, so replay then
// runs one aggregator.
package replay
