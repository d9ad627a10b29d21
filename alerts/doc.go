// Package alerts evaluates threshold, rate-of-change and absence rules on
// raw series and window aggregates in-stream, and runs the restart-safe
// alert state machine (inactive → pending → firing → resolved). Its
// sub-packages deliver the resulting events over MQTT with retained state
// and publish Home Assistant discovery.
//
// An Engine is a pure, deterministic function of its inputs, fed in log
// order from one goroutine: Reading for every reading, Window for every
// window the aggregator closes, Tick for every edged.KindTick record. It
// never reads the wall clock, starts no goroutine and does no I/O, so
// replaying the write-ahead log emits the same events with the same ids,
// and a checkpoint (MarshalBinary) restored and fed the rest of the log
// emits exactly what an uninterrupted run does. That is how a restart
// neither re-fires a firing alert as new nor forgets it.
//
// # Rules
//
// A Rule (see its fields; config files write them in YAML) selects series
// by path.Match patterns over the series name and, optionally, the device
// id; '*' does not cross '/', so "greenhouse/*" matches
// greenhouse/temperature but not greenhouse/bench/temperature. A series
// here is (device, series name); the unit is not part of it. Which rules
// match a series is decided the first time the engine sees it.
//
// By default a rule evaluates raw readings. With window and aggregate it
// evaluates instead the chosen aggregate of each closed window of that size
// (amendments carry no values and are ignored). A pNN aggregate needs the
// aggregator to compute that quantile (Rule.Quantile): a window without it
// is skipped.
//
// A rule has exactly one condition:
//
//   - above X fires on a value > X and, once firing, resolves on a value
//     < clear_below (default X); below X mirrors it with clear_above. A
//     value equal to the clear threshold keeps the alert firing. The gap
//     between the two thresholds (hysteresis) is what keeps a noisy
//     series from flapping.
//   - rate_above and rate_below apply the same to the change per second
//     between consecutive values of the series by event time (for window
//     rules, between consecutive windows by start). A value whose event
//     time is not after the latest one's is skipped for the rate and does
//     not replace it; the first value of a series gives no rate.
//   - absent D fires when a series that has been heard from is then silent
//     for D of processing time, and resolves with its next reading. A
//     series the engine has never seen does not fire: the engine cannot
//     tell a sensor that died from one that was never installed. Absence
//     is checked on ticks, and applies to raw readings only.
//
// Readings with an untrusted event time (edged.Flags.Untrusted: clock not
// synchronised, absurd timestamp) or a NaN or ±Inf value are not evaluated
// by threshold or rate rules, nor do they become the previous value of a
// rate: their time or value means nothing. They do count as heard from for
// absence, since the sensor is evidently alive.
//
// # States and events
//
// An alert instance is a (rule, device, series). Its cycle starts when the
// condition first holds: the instance goes pending if the rule has for,
// firing at once otherwise. A pending instance fires once the condition has
// held for that long (checked on each value and on ticks, the latest value
// standing for the interval since), and returns to inactive if a value no
// longer meets it; for absence, a reading returns it to inactive. A firing
// instance resolves only when the clear condition is met. Resolved behaves
// as inactive: the next time the condition holds starts a new cycle. Every
// transition emits an Event, pending and the return to inactive included,
// so that a retained MQTT state is always the instance's current one. With
// renotify, a firing instance repeats its firing event (Renotify set, same
// id, latest value) on the first tick at least that long after it was last
// notified. Alerts lists the instances that are pending, firing or
// resolved.
//
// # Processing time
//
// for, absent and renotify are measured in processing time: the ingest
// time of readings and the time of ticks. Windows carry none. A Raspberry
// Pi has no real-time clock, so processing time can jump: from 1970, or
// the last shutdown, to the present when NTP synchronises, or across a
// restart of the daemon. Timers therefore run on the time elapsed between
// consecutive inputs, leaving out any step larger than Options.ClockStep
// (forward or back): synchronising the clock is not an hour of silence.
// Small steps back (a reading stamped just before a tick it was logged
// after) do not advance time, and time advances again once the clock
// passes the latest instant seen. Event times (Started, Resolved, Alert's
// Since) are the input's processing time as is.
//
// # Event ids and order
//
// Every event of one cycle, inactive → … → resolved or back to inactive,
// carries the same ID: the hex FNV-64a hash of the rule name, device and
// series, each followed by a zero byte, then the LSN (8 bytes, big-endian)
// and Seq (4 bytes) of the cycle's first event. Each event carries the LSN
// of the input that caused it and Seq, its number among the events of that
// LSN (inputs sharing an LSN, such as the readings of one record and the
// windows it closed, continue the count), so (LSN, Seq) totally orders all
// events: a delivery layer that records the last one it delivered can skip
// exactly those after a crash. Inputs with an LSN below the engine's latest
// are ignored. Events of one input are emitted in rule order; those of a
// tick in order of (device, series), then rule.
//
// # Checkpoints
//
// MarshalBinary encodes the whole state (versioned, with a CRC-32C and a
// hash of the rules and options; the bytes are a function of the state
// alone) and covers the log up to LastLSN. To recover: New with the same
// rules, UnmarshalBinary, then feed every record after LastLSN. A
// checkpoint taken with other rules is refused with ErrCheckpointRules:
// rebuild the state by replaying the log instead. Severity and labels are
// not part of the hash, since they only decorate events: changing them
// keeps the checkpoint usable.
//
// # Memory and cost
//
// The engine keeps, per (device, series) some rule matches, a few hundred
// bytes and one instance per matching rule, and an entry for each series
// no rule matches. A reading that changes no state allocates nothing
// (BenchmarkReading: 1000 series × 5 rules); only transitions allocate.
package alerts
