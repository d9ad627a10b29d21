package wal

import (
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// SyncPolicy says when appended records are made durable with fsync.
type SyncPolicy string

const (
	// SyncAlways fsyncs every group-commit batch before reporting it durable.
	SyncAlways SyncPolicy = "always"
	// SyncInterval fsyncs at most every Options.SyncInterval; a record is
	// durable at most one interval after it was written.
	SyncInterval SyncPolicy = "interval"
	// SyncNever leaves flushing to the kernel; a record counts as durable
	// once written to the OS. A power cut can lose recent records.
	SyncNever SyncPolicy = "never"
)

// ParseSyncPolicy parses "always", "interval" or "never".
func ParseSyncPolicy(s string) (SyncPolicy, error) {
	switch p := SyncPolicy(s); p {
	case SyncAlways, SyncInterval, SyncNever:
		return p, nil
	}
	return "", fmt.Errorf("wal: unknown fsync policy %q (want always, interval or never)", s)
}

// Options configure a Log. The zero value of every field but Dir is a
// sensible default.
type Options struct {
	// Dir holds the segments, the cursors and the quarantine. Required.
	Dir string
	// SegmentSize is the size at which the active segment is closed and a
	// new one started. A segment exceeds it by at most one batch.
	// Default 16 MiB.
	SegmentSize int64
	// Sync is the fsync policy. Default SyncInterval.
	Sync SyncPolicy
	// SyncInterval bounds how long a written record waits for fsync under
	// SyncInterval. Default 5 ms.
	SyncInterval time.Duration
	// RetentionAge removes closed segments older than this once every
	// cursor has consumed them. Zero keeps them (within RetentionBytes).
	RetentionAge time.Duration
	// RetentionBytes is a hard quota on the log's size. When exceeded, the
	// oldest closed segments are removed, consumed ones or not; records a
	// cursor had not consumed are counted as dropped. Zero means no quota.
	RetentionBytes int64
	// RetentionCheck is how often Run applies retention. Default 10 s.
	RetentionCheck time.Duration
	// MaxPendingBytes bounds appended records not yet handed to the file
	// system; Append blocks beyond it. Default 1 MiB: batches form only while
	// a write or fsync is in progress, so this bounds memory, not throughput.
	MaxPendingBytes int
	// VerifyOnStart makes Run check the closed segments' checksums in the
	// background and quarantine corrupt ones. Open itself only scans the
	// active segment, so a large log starts fast.
	VerifyOnStart bool
	// FS is the file system. Default OSFS.
	FS FS
	// Logger receives recovery, quarantine and retention events. Nil
	// discards them.
	Logger *slog.Logger
	// Now is the clock for retention by age. Default time.Now.
	Now func() time.Time
}

// Validate reports the first invalid field.
func (o *Options) Validate() error {
	if o.Dir == "" {
		return errors.New("wal: Options.Dir is required")
	}
	if o.SegmentSize < 0 || (o.SegmentSize > 0 && o.SegmentSize < headerSize+frameHeaderSize+1) {
		return fmt.Errorf("wal: Options.SegmentSize %d is too small", o.SegmentSize)
	}
	if o.Sync != "" {
		if _, err := ParseSyncPolicy(string(o.Sync)); err != nil {
			return err
		}
	}
	if o.SyncInterval < 0 || o.RetentionAge < 0 || o.RetentionBytes < 0 || o.RetentionCheck < 0 || o.MaxPendingBytes < 0 {
		return errors.New("wal: Options durations and sizes must not be negative")
	}
	return nil
}

func (o Options) withDefaults() Options {
	if o.SegmentSize == 0 {
		o.SegmentSize = 16 << 20
	}
	if o.Sync == "" {
		o.Sync = SyncInterval
	}
	if o.SyncInterval == 0 {
		o.SyncInterval = 5 * time.Millisecond
	}
	if o.RetentionCheck == 0 {
		o.RetentionCheck = 10 * time.Second
	}
	if o.MaxPendingBytes == 0 {
		o.MaxPendingBytes = 1 << 20
	}
	if o.FS == nil {
		o.FS = OSFS{}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}
