package wal_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/edged-io/edged/wal"
	"github.com/edged-io/edged/wal/waltest"
)

func TestAppendReadAcrossPoliciesAndRotation(t *testing.T) {
	for _, policy := range []wal.SyncPolicy{wal.SyncAlways, wal.SyncInterval, wal.SyncNever} {
		t.Run(string(policy), func(t *testing.T) {
			dir := t.TempDir()
			opts := wal.Options{Dir: dir, Sync: policy, SegmentSize: 4096}
			l := startLog(t, opts)
			const n = 500
			for i := range n {
				if lsn := mustAppend(t, l, payload(i, 10+i%200)); lsn != uint64(i+1) {
					t.Fatalf("record %d got LSN %d", i, lsn)
				}
			}
			st := l.Stats()
			if len(st.Segments) < 10 || st.Rotations == 0 {
				t.Fatalf("want many segments with SegmentSize 4096, got %d (%d rotations)", len(st.Segments), st.Rotations)
			}
			got := readAll(t, l, 1)
			if len(got.lsns) != n || len(got.gaps) != 0 {
				t.Fatalf("read %d records and %d gaps, want %d and 0", len(got.lsns), len(got.gaps), n)
			}
			for i := range n {
				if !bytes.Equal(got.recs[uint64(i+1)], payload(i, 10+i%200)) {
					t.Fatalf("record %d differs", i+1)
				}
			}
			// Reading from the middle starts exactly there.
			mid := readAll(t, l, 321)
			if mid.lsns[0] != 321 || len(mid.lsns) != n-320 {
				t.Fatalf("reader from 321 starts at %d with %d records", mid.lsns[0], len(mid.lsns))
			}
			// Reopen: everything is still there and LSNs continue.
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			l2 := startLog(t, opts)
			if lsn := mustAppend(t, l2, []byte("after reopen")); lsn != n+1 {
				t.Fatalf("LSN after reopen = %d, want %d", lsn, n+1)
			}
			if got := readAll(t, l2, 1); len(got.lsns) != n+1 {
				t.Fatalf("after reopen read %d records, want %d", len(got.lsns), n+1)
			}
		})
	}
}

func TestConcurrentAppendersKeepOrderPerAppender(t *testing.T) {
	l := startLog(t, wal.Options{Dir: t.TempDir(), Sync: wal.SyncAlways, SegmentSize: 64 << 10})
	const writers, each = 16, 200
	var wg sync.WaitGroup
	lsns := make([][]uint64, writers)
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				lsns[w] = append(lsns[w], mustAppend(t, l, []byte{byte(w), byte(i), byte(i >> 8)}))
			}
		})
	}
	wg.Wait()
	got := readAll(t, l, 1)
	if len(got.lsns) != writers*each {
		t.Fatalf("read %d records, want %d", len(got.lsns), writers*each)
	}
	for i, lsn := range got.lsns {
		if lsn != uint64(i+1) {
			t.Fatalf("LSNs not dense: position %d has %d", i, lsn)
		}
	}
	for w := range writers {
		if !slices.IsSorted(lsns[w]) {
			t.Fatalf("writer %d's records are out of order", w)
		}
		for i, lsn := range lsns[w] {
			if !bytes.Equal(got.recs[lsn], []byte{byte(w), byte(i), byte(i >> 8)}) {
				t.Fatalf("LSN %d holds the wrong record", lsn)
			}
		}
	}
	if st := l.Stats(); st.Batches >= st.Appends {
		t.Logf("no batching observed: %d batches for %d appends", st.Batches, st.Appends)
	}
}

func TestLiveTailFollowsAppends(t *testing.T) {
	l := startLog(t, wal.Options{Dir: t.TempDir(), Sync: wal.SyncInterval, SegmentSize: 1024})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	const n = 300
	got := make(chan []uint64, 1)
	go func() {
		r := l.NewReader(1)
		defer r.Close()
		var lsns []uint64
		for len(lsns) < n {
			rec, err := r.Next()
			if errors.Is(err, io.EOF) {
				if err := r.Wait(ctx); err != nil {
					break
				}
				continue
			}
			if err != nil {
				t.Errorf("tail: %v", err)
				break
			}
			lsns = append(lsns, rec.LSN)
		}
		got <- lsns
	}()
	for i := range n {
		if _, err := l.Append(payload(i, 40)); err != nil {
			t.Fatal(err)
		}
		if i%50 == 0 {
			time.Sleep(2 * time.Millisecond)
		}
	}
	lsns := <-got
	if len(lsns) != n || lsns[n-1] != n {
		t.Fatalf("tail saw %d records, last %v", len(lsns), lsns[len(lsns)-1:])
	}
}

func TestWaitDurableHonoursContext(t *testing.T) {
	l, err := wal.Open(wal.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	lsn, err := l.Append([]byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	// Run is not running: nothing becomes durable.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := l.WaitDurable(ctx, lsn); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitDurable = %v, want deadline exceeded", err)
	}
	// Close commits what is pending.
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.WaitDurable(context.Background(), lsn); err != nil {
		t.Fatalf("after Close, WaitDurable = %v", err)
	}
	if _, err := l.Append([]byte("y")); !errors.Is(err, wal.ErrClosed) {
		t.Fatalf("Append after Close = %v, want ErrClosed", err)
	}
}

func TestRejectsBadRecordsAndOptions(t *testing.T) {
	l := startLog(t, wal.Options{Dir: t.TempDir()})
	if _, err := l.Append(nil); !errors.Is(err, wal.ErrEmpty) {
		t.Fatalf("empty record: %v", err)
	}
	if _, err := l.Append(make([]byte, wal.MaxRecordSize+1)); !errors.Is(err, wal.ErrTooLarge) {
		t.Fatalf("huge record: %v", err)
	}
	for _, o := range []wal.Options{{}, {Dir: "x", Sync: "sometimes"}, {Dir: "x", SegmentSize: 10}, {Dir: "x", RetentionBytes: -1}} {
		if err := o.Validate(); err == nil {
			t.Errorf("Validate(%+v) accepted it", o)
		}
	}
}

func TestCursorsPersistAtomically(t *testing.T) {
	dir := t.TempDir()
	opts := wal.Options{Dir: dir}
	l := startLog(t, opts)
	for i := range 10 {
		mustAppend(t, l, payload(i, 8))
	}
	if err := l.SetCursor("aggregator", 7); err != nil {
		t.Fatal(err)
	}
	if err := l.SetCursor("shipper", 3); err != nil {
		t.Fatal(err)
	}
	if err := l.SetCursor("../evil", 3); err == nil {
		t.Fatal("accepted a cursor name with a path in it")
	}
	l.Close()
	l2 := startLog(t, opts)
	if c, ok := l2.Cursor("aggregator"); !ok || c != 7 {
		t.Fatalf("aggregator cursor = %d,%v", c, ok)
	}
	if st := l2.Stats(); st.Lag["shipper"] != 7 || st.Lag["aggregator"] != 3 {
		t.Fatalf("lag = %v", st.Lag)
	}
	if err := l2.DeleteCursor("shipper"); err != nil {
		t.Fatal(err)
	}
	if _, ok := l2.Cursor("shipper"); ok {
		t.Fatal("deleted cursor still there")
	}
	if matches, _ := filepath.Glob(filepath.Join(dir, "cursors", "*.tmp")); len(matches) != 0 {
		t.Fatalf("temporary files left: %v", matches)
	}
}

func TestDamagedCursorResetsInsteadOfRefusingToStart(t *testing.T) {
	mem := waltest.NewMemFS()
	opts := wal.Options{Dir: "/wal", FS: mem}
	l := startLog(t, opts)
	mustAppend(t, l, []byte("a"))
	if err := l.SetCursor("c", 1); err != nil {
		t.Fatal(err)
	}
	l.Close()
	mem.WriteFile("/wal/cursors/c", []byte("lsn=9 crc=00000000\n"))
	l2 := startLog(t, wal.Options{Dir: "/wal", FS: mem})
	if c, ok := l2.Cursor("c"); !ok || c != 0 {
		t.Fatalf("damaged cursor = %d,%v; want reset to 0", c, ok)
	}
}

func TestStickyErrorStopsAcks(t *testing.T) {
	mem := waltest.NewMemFS()
	efs := &waltest.ErrorFS{FS: mem}
	l := startLog(t, wal.Options{Dir: "/wal", FS: efs, Sync: wal.SyncAlways})
	mustAppend(t, l, []byte("durable"))
	efs.Arm(efs.Ops()+1, true) // the disk dies
	if _, err := l.AppendSync(context.Background(), []byte("doomed")); !errors.Is(err, wal.ErrFailed) {
		t.Fatalf("append on a failing disk = %v, want ErrFailed", err)
	}
	if _, err := l.AppendSync(context.Background(), []byte("after")); !errors.Is(err, wal.ErrFailed) {
		t.Fatalf("append after failure = %v, want the sticky ErrFailed", err)
	}
	if !errors.Is(l.Err(), waltest.ErrInjected) {
		t.Fatalf("Err() = %v, want the injected error", l.Err())
	}
}
