// Package reliability is the whole-system fault-injection suite: the real
// edged binary, the real mosquitto and the real InfluxDB (internal/
// servicetest), a load generator, a verifier, and the faults — kill -9,
// power cuts, a full disk, broker restarts and kills, network partitions,
// an InfluxDB outage, clock jumps (devices' clocks, and edged's own through
// its test clock, EDGED_TEST_CLOCK_FILE), malformed input at volume, and a
// soak (30 minutes at 2,000 readings/s through broker restarts and InfluxDB
// outages, with edged's RSS, goroutines and fds sampled). The figures
// and the reasoning behind each harness are in RELIABILITY.md at the
// repository root.
//
// # Pieces
//
//   - Load and Publisher: QoS 1 readings with per-sensor sequence numbers;
//     the event time and the value derive from (sensor, seq), so a reading
//     has the same identity however often it is published. The publisher
//     records what the broker accepted (PUBACK) and re-sends what it did
//     not.
//   - Edged and Supervisor: start, kill -9, stop the binary; probe
//     /readyz, /metrics, /api/v1/*, /proc; play systemd's
//     Restart=on-failure.
//   - The verifier: what the broker accepted against the WAL
//     (WALReadings, `edged wal verify`), InfluxDB (Influx, InfluxQL), the
//     edge windows (CompareWindows: exact aggregates computed from the
//     load) and the batch layer (Reconcile, CheckServed: sync/reconcile's
//     job and serving query).
//   - Faults: Proxy (a TCP forwarder that cuts a link with RST or
//     silently, in place of iptables on loopback), MountExt4 and Fill (a
//     small loop-mounted ext4 filled to ENOSPC), CrashFS (a FUSE file
//     system, spoken to the kernel without a library, that keeps only what
//     was fsynced and throws the rest away on PowerCut).
//
// # Tiers
//
// The short tier is part of `make test` (plain `go test`); the long tier
// runs with `go test -long` or EDGED_RELIABILITY=long (`make
// reliability-long`). Mounting (ext4 loop, FUSE) needs root; a missing
// capability fails the test, it never skips. TestSoak runs in the long
// tier only and skips (SKIP, not PASS) in the short one;
// EDGED_SOAK_DURATION sets its length (default 30m).
//
// Criteria that a known, reported edged bug breaks are measured and
// recorded but enforced only with EDGED_RELIABILITY_KNOWN_BUGS=1 (see
// knownBugs in the tests).
package reliability
