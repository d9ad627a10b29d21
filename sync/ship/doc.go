// Package ship tails the write-ahead log from its cursor and ships raw
// readings, closed-window edge estimates, gap records and a shipped-through
// progress marker to a central InfluxDB, idempotently (the WAL timestamp is
// the point's timestamp) and with its own retry and error taxonomy. The
// cursor advances only after the server confirms a batch.
//
// It arrives with the batch-layer issue; until then the package holds only
// this documentation.
package ship
