package wal_test

import (
	"errors"
	"testing"
	"time"

	"github.com/edged-io/edged/wal"
	"github.com/edged-io/edged/wal/waltest"
)

func segmentsOf(l *wal.Log) []wal.SegmentInfo { return l.Stats().Segments }

// TestQuotaDropsOldestAndCountsUnconsumedExactly: with a quota, the oldest
// closed segments go; what a cursor had not consumed is counted exactly and
// that cursor's reader sees the gap with exact bounds.
func TestQuotaDropsOldestAndCountsUnconsumedExactly(t *testing.T) {
	mem := waltest.NewMemFS()
	l := startLog(t, wal.Options{Dir: "/wal", FS: mem, SegmentSize: 1024, RetentionBytes: 4096, RetentionCheck: time.Hour, Sync: wal.SyncAlways})
	mustAppend(t, l, payload(0, 40))
	// "slow" consumed only the first record; "fast" keeps up, 5 behind.
	if err := l.SetCursor("slow", 1); err != nil {
		t.Fatal(err)
	}
	for i := 1; i < 300; i++ {
		lsn := mustAppend(t, l, payload(i, 40))
		if lsn > 5 {
			if err := l.SetCursor("fast", lsn-5); err != nil {
				t.Fatal(err)
			}
		}
	}
	l.ApplyRetention() // retention also runs on every rotation; this settles the last one
	st := l.Stats()
	if st.Bytes > 4096 || st.RetainedDrops == 0 {
		t.Fatalf("after retention %d bytes in %d segments (removed %d)", st.Bytes, len(st.Segments), st.RetainedDrops)
	}
	firstKept := st.FirstLSN
	if want := firstKept - 2; st.Dropped["slow"] != want {
		t.Fatalf("slow lost %d unconsumed records, want exactly %d", st.Dropped["slow"], want)
	}
	if st.Dropped["fast"] != 0 {
		t.Fatalf("fast lost %d records it had not consumed, want 0", st.Dropped["fast"])
	}
	// The slow consumer resumes after its cursor and learns of the gap.
	r := l.NewReader(2)
	defer r.Close()
	_, err := r.Next()
	var gap *wal.GapError
	if !errors.As(err, &gap) || gap.From != 2 || gap.To != firstKept-1 {
		t.Fatalf("slow reader got %v, want a gap 2..%d", err, firstKept-1)
	}
	rec, err := r.Next()
	if err != nil || rec.LSN != firstKept {
		t.Fatalf("after the gap: %v %d", err, rec.LSN)
	}
}

// TestAgeRetentionKeepsWhatACursorStillNeeds: old segments go only once
// every cursor has consumed them.
func TestAgeRetentionKeepsWhatACursorStillNeeds(t *testing.T) {
	now := time.Now()
	clock := func() time.Time { return now }
	l := startLog(t, wal.Options{Dir: "/wal", FS: waltest.NewMemFS(), SegmentSize: 1024, RetentionAge: time.Hour,
		RetentionCheck: time.Hour, Now: clock, Sync: wal.SyncAlways})
	for i := range 100 {
		mustAppend(t, l, payload(i, 40))
	}
	segs := segmentsOf(l)
	if err := l.SetCursor("c", segs[3].FirstLSN-1); err != nil { // consumed the first three segments
		t.Fatal(err)
	}
	if rep, _ := l.ApplyRetention(); rep.Segments != 0 {
		t.Fatalf("removed %d young segments", rep.Segments)
	}
	now = now.Add(2 * time.Hour)
	rep, err := l.ApplyRetention()
	if err != nil {
		t.Fatal(err)
	}
	if rep.Segments != 3 || len(rep.Unconsumed) != 0 {
		t.Fatalf("removed %d segments, unconsumed %v; want the 3 consumed ones and no drops", rep.Segments, rep.Unconsumed)
	}
	if first := segmentsOf(l)[0].FirstLSN; first != segs[3].FirstLSN {
		t.Fatalf("first kept segment %d, want %d", first, segs[3].FirstLSN)
	}
}
