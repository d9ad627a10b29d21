// Package reconcile is the central batch and serving layer: it finds the
// windows that are complete in InfluxDB, recomputes exact aggregates from
// the raw readings, explains every difference from the edge estimate by a
// counted cause, writes the batch view, and serves the merged view (exact
// where known, edge estimate otherwise). It runs in edged-reconcile, never
// on the edge; it reads the schema written by sync/ship.
//
// # A run
//
// [Job.Run] (edged-reconcile run) reads every device's edged_progress
// (through_lsn: every reading and every window row for records ≤ it is in
// the store) and, for each device, in parallel over at most
// Options.Parallel devices:
//
//  1. lists the candidate windows: edged_window rows whose applied_lsn
//     exceeds the device's marker (see Incremental runs), with a Flux
//     filter on the value so only changed rows travel;
//  2. keeps those the store holds completely: ⌊applied_lsn⌋ ≤ through_lsn
//     (the edge's latest event for the window, closing or amendment, is
//     shipped, and with it every reading up to that record). Others are
//     pending;
//  3. groups them into time chunks (at most Options.ChunkSpan, 3h) and
//     reads each chunk in one Flux query: the edge rows, the existing
//     reconciliation records and the raw readings (value and lsn) of the
//     device;
//  4. per window: computes the exact aggregates, compares, attributes,
//     and writes an edged_batch row and an edged_reconciliation record
//     unless the stored record already says the same;
//  5. records its marker (edged_reconcile_progress) when the device is
//     done.
//
// A window whose raw readings include one with an LSN above ⌊applied_lsn⌋
// is also pending: the edge refused that reading after the window closed
// (late, duplicate or conflict) and the amendment counting it, emitted at
// the edge's next tick, is not shipped yet. Pending windows are counted in
// the report and taken by a later run.
//
// # Exact aggregates
//
// Raw values are fetched in bulk and aggregated in Go rather than by Flux
// sum()/mean(): Flux adds floats in storage order, so its last bits depend
// on the order, and a delta must never be an artefact of summation. The
// batch layer computes what the edge computes (aggregate package):
// count; the correctly rounded sum (exact in math/big, rounded once to
// nearest-even: bit-identical to the edge's fixed-point accumulator, which
// a test checks against the real aggregator); mean = sum/count; min, max;
// first and last by event time; and the exact quantiles by
// aggregate.ExactQuantile (nearest rank, the element Flux's
// quantile(method: "exact_selector") picks) for each quantile field the
// edge row has (p50, p95, p99). The same fetch gives the window's LSN
// span and a digest of its (time, value) pairs. Flux does the selecting:
// time ranges, tags, fields, and the applied_lsn filter.
//
// # Attribution
//
// Every delta is exact − edge. With the edge's counts for the window
// (late, duplicates, conflicts, untrusted — untrusted includes invalid —
// cumulative over its emission and amendments, as shipped):
//
//   - Count. InfluxDB keeps one point per identity, so duplicates and
//     conflicts do not change the exact count, and untrusted readings are
//     in edged_untrusted, not edged_reading. A surplus (exact > edge) is
//     explained by late readings when it is at most late (a late reading
//     with a new identity adds one; one that repeats an identity adds
//     none). A shortfall is explained only by readings the WAL quota
//     dropped before shipping: an edged_gap whose LSN range overlaps the
//     window's LSN span (below). Then dropped = the shortfall (a lower
//     bound when late readings also add).
//   - Values (sum, mean, min, max, first, last, quantiles). Late readings
//     (values the edge never saw, or that overwrote an accepted identity
//     centrally), conflicts (the edge keeps the first value, InfluxDB the
//     last) and drops change them; with one of those causes present, a
//     differing value is attributed to it. With none, sum and mean must
//     agree within SumULPs (4) units in the last place — both sides are the
//     correctly rounded sum of the same values, so in practice they agree
//     to the bit; min, max, first and last exactly (−0 = +0); and every
//     quantile within the sketch's bound α·|x| (α = the row's alpha) plus a
//     few ulps, or the collapsed-sketch bound (largest magnitude · 2^-50)
//     when the values of its sign span more than 2^50.
//
// The window's LSN span is [lo, close_lsn]: lo is the smallest LSN of its
// raw readings in the store (the edge was folding readings into it then),
// lowered to just after the close of the previous window of the same
// series and size when a gap lies below. A gap wholly before that is not
// taken as an explanation: a shortfall it might explain (readings of this
// window accepted before the previous window closed, all of them dropped)
// is reported as drift, never hidden.
//
// The status is "exact" when nothing differs beyond those tolerances,
// "explained" when something differs and every difference is attributed,
// "drift" otherwise. A run that finds drift exits 1; the record stays in
// the store (status "drift") for dashboards and alerts.
//
// # Incremental runs and idempotence
//
// All state is in InfluxDB; the job keeps no local state and needs no
// lock: two overlapping runs compute the same records from the same data
// and write the same points (InfluxDB overwrites a point with the same
// series and time), so the worst case is duplicated work.
//
// The marker (edged_reconcile_progress.through_lsn) is the through_lsn a
// device's previous complete run reached, held below the applied_lsn of
// any window it left pending. Every change the edge knows about reaches
// the store as a window row with a larger applied_lsn: a newly closed
// window, or an amendment for the late readings, duplicates or conflicts
// that re-shipped data brings. So a run looks only at rows whose
// applied_lsn exceeds the marker; the raw data itself is not scanned for
// changes. When a candidate already has a record, the job recomputes it
// and compares every field but reconciled_through_lsn, the digest of the
// raw points included: a window with late data is re-reconciled, and one
// whose record already says the same is left alone. A run with nothing new
// finds no candidate and writes nothing, not even the marker. Data changed
// behind the edge's back (a manual write) is found by a run with --full,
// which recomputes every window and still writes only the differences.
//
// A stopped run (SIGTERM/SIGINT, --timeout) stops between windows, writes
// what it computed, does not move the marker of an unfinished device and
// exits 4; the next run takes up where it left off.
//
// # Schema
//
// Read (written by sync/ship, see its documentation): edged_reading,
// edged_window, edged_gap, edged_progress. Written by this package, with
// the tags of edged_window (device, series, window, view) and the window's
// start as time, so that a rewrite overwrites:
//
//	edged_batch           the exact aggregates (floats, like edged_window):
//	                      count, sum, mean, min, max, first, last, and the
//	                      quantile fields the edge row has (p50, p95, p99);
//	                      end (int, ns); unit (string, from the edge row).
//	                      count 0 and no aggregates for a window whose
//	                      readings the store does not have.
//	edged_reconciliation  status (string: exact, explained, drift),
//	                      explanation (string);
//	                      edge_count, exact_count, count_delta (int);
//	                      sum_delta, mean_delta, min_delta, max_delta,
//	                      first_delta, last_delta, p50_delta, … (float,
//	                      exact − edge, when both sides have the value);
//	                      late, duplicates, conflicts, untrusted, dropped
//	                      (int: the causes);
//	                      sketch_max_rel_err, alpha (float);
//	                      edge_close_lsn (int), edge_applied_lsn (float: LSN,
//	                      or LSN + ½ for an amendment);
//	                      exact_max_lsn (int), digest (string: FNV-64a of
//	                      the window's (time, value) pairs);
//	                      reconciled_through_lsn (int: the through_lsn the
//	                      record was computed at); end (int, ns)
//	edged_reconcile_progress
//	                      tag device; through_lsn (int): the marker;
//	                      updated (int, ns wall clock); time 0
//
// The batch row and the record of a window go in the same write request.
// A record's fields only ever grow in number (the edge's fields are fixed
// at emission, and the exact count never falls), so a rewrite leaves no
// stale field behind.
//
// # Serving
//
// [Job.Query] (edged-reconcile query) returns, for one device, series,
// window size and view, one row per window starting in [from, to): the
// edged_batch values with source "batch" (and the reconciliation status)
// where the window is reconciled, else the edged_window estimate with
// source "edge".
//
// # Command line
//
// [Main] is edged-reconcile (cmd/edged-reconcile only wires signals):
//
//	edged-reconcile run   [--config FILE] [--url U --bucket B --org O --token-file F]
//	                      [--device D]… [--view V] [--parallel N] [--since DUR] [--full]
//	                      [--dry-run] [--timeout DUR] [--report FILE] [--json] [--progress DUR]
//	edged-reconcile query --device D --series S --window 1m --from T [--to T] [--view v1] [--json]
//
// A run prints a table per device (windows checked, exact, explained,
// drift, pending, points written, and the causes) and the drifted windows,
// or with --json the [Report]; --report FILE writes the JSON too. A
// progress line goes to stderr every --progress (5s): windows done/total,
// rate, ETA. Exit codes: 0 ok, 1 drift found, 2 usage or configuration
// error (also an unknown --device or an unreadable token file), 3 InfluxDB
// unreachable or a query/write failed (after three attempts for transient
// failures), 4 stopped early.
//
// The token is read from --token-file, the configuration's
// influx.token_file, $EDGED_RECONCILE_TOKEN_FILE or the systemd credential
// $CREDENTIALS_DIRECTORY/influx-token (LoadCredential=influx-token:…), in
// that order; never from the command line (refused) and never logged.
// With none, requests carry no token (InfluxDB 1.8 without
// authentication).
//
// For cron, a systemd timer (Type=oneshot) or a Kubernetes CronJob: run
// `edged-reconcile run --config FILE --timeout 50m --progress 0` at any
// period; alert on exit code 1 (drift) and 3 (store); 4 is harmless.
// Overlapping runs are safe (see above), so concurrencyPolicy: Forbid is a
// saving, not a requirement.
//
// # Limitations
//
//   - A series reported in two units on one device shares its tags in the
//     store (sync/ship keys windows by device and series); its windows
//     would show drift.
//   - The edge does not ship a window's Collapsed flag; the quantile check
//     infers a possible collapse from the values' magnitudes.
//   - edged_window.end is a float, which cannot hold every nanosecond
//     timestamp exactly: the job takes a window's end from its start and
//     its window tag.
//   - Readings the edge never windowed (a series with no edged_window row
//     at all) are not looked at: the job reconciles the edge's windows.
package reconcile
