// Package wal is edged's write-ahead log: the local source of truth that
// every reading is appended to before anything else happens to it. The
// aggregator, the alert engine and the shipper are consumers of the log and
// can be rebuilt from it by replay. The log is payload-agnostic: a record is
// an opaque, non-empty byte string of at most MaxRecordSize bytes.
//
// # Records, LSNs and durability
//
// Every record gets a log sequence number (LSN): 1, 2, 3, … with no holes
// in what Append hands out. Append only queues a record; the committer
// (Log.Run) takes everything queued since its last turn, writes it with one
// write call and, under the fsync policy, makes it durable with one
// fdatasync: group commit. WaitDurable blocks until a record is durable;
// the MQTT ingest path acknowledges a message to the broker only then.
//
//   - SyncAlways: every batch is fsynced before it is reported durable.
//   - SyncInterval: batches are written at once and fsynced at most
//     Options.SyncInterval later; durable means fsynced.
//   - SyncNever: durable means handed to the kernel; survives a crash of the
//     process, not of the machine.
//
// A write or fsync error is sticky (ErrFailed): nothing is reported durable
// after it, appends fail, Run returns the error and the daemon exits; the
// next Open re-checks the tail. The log tries to cut the segment back to its
// durable end first, so that records whose append failed do not reappear.
//
// # Files
//
// The directory holds segment files named by the LSN of their first record
// (%020d.wal), a cursors/ directory with one small file per consumer, and a
// quarantine/ directory for damaged segments and torn tails kept for
// inspection. A segment is closed, fsynced and never written again once it
// reaches Options.SegmentSize; a new one is created, fsynced, and the
// directory fsynced before any record goes into it.
//
// A segment starts with a 32-byte header:
//
//	0       8       10      12                      20                      28      32
//	+-------+-------+-------+-----------------------+-----------------------+-------+
//	| magic |version| flags | segment id = first LSN|  created (unix ns)    | CRC32C|
//	+-------+-------+-------+-----------------------+-----------------------+-------+
//	"EDGEDWAL" u16=1   u16=0       u64                      i64               u32 of 0..28
//
// followed by records, each framed as
//
//	0           4           8                   8+length
//	+-----------+-----------+-------------------+
//	|  length   |  CRC32C   |   payload         |
//	+-----------+-----------+-------------------+
//	  u32 > 0     u32 of (LSN u64 ‖ length u32 ‖ payload)
//
// All integers are little-endian. The LSN is not stored: the n-th record of
// a segment has LSN first+n. It is folded into the checksum instead, so a
// frame that is stale, misplaced or from another segment never verifies.
// A zero length is never written, so zeroed space reads as the end.
//
// # Recovery and the torn-write argument
//
// Only the last segment can be torn: a segment is fsynced before the next
// one is created. Open scans the last segment only (a large log opens in
// the time it takes to read one segment); closed segments are checked when
// read, by Verify, and in the background by Run with Options.VerifyOnStart.
//
// A crash can interrupt only the last write, and everything written since
// the last fsync may be partly on disk in any order of sectors. So in the
// last segment, the first frame that does not verify marks the end of what
// may have been reported durable: that frame and everything after it were
// never acknowledged. If no verifiable frame follows it (by its length
// field), it is a torn tail: the file is truncated there, the cut bytes are
// kept under quarantine/, and the log opens. If the frame after it does
// verify, the bad frame is corruption of data that may have been durable,
// not a torn write, and the segment is salvaged like a closed one.
//
// A corrupt closed segment (or a corrupt header) is salvaged: every record
// that verifies is kept, in segments named by their first LSN, the damaged
// original is moved to quarantine/, and the records that could not be kept
// surface to readers as a GapError with exact LSN bounds. The log never
// refuses to open for damage to its data, and never drops a record that
// verifies.
//
// # Readers, cursors and retention
//
// A Reader returns durable records from any LSN in order and doubles as a
// live tail: at the end it returns io.EOF and Wait blocks until more is
// durable. Consumers record progress with SetCursor (atomic: tmp, fsync,
// rename, fsync directory). Retention removes the oldest closed segments:
// by age once every cursor has consumed them, and by the size quota even if
// not, in which case the records a cursor had not consumed are counted per
// cursor (Stats.Dropped, RetentionReport) and its Reader sees a GapError.
package wal
