package wal_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/edged-io/edged/wal"
	"github.com/edged-io/edged/wal/waltest"
)

// outcome is what a workload's appenders were told.
type outcome struct {
	mu       sync.Mutex
	appended map[uint64][]byte // every LSN Append handed out
	acked    map[uint64][]byte // reported durable
	failed   [][]byte          // append returned an error
}

func newOutcome() *outcome {
	return &outcome{appended: map[uint64][]byte{}, acked: map[uint64][]byte{}}
}

func (o *outcome) ackedCopy() map[uint64][]byte {
	o.mu.Lock()
	defer o.mu.Unlock()
	m := make(map[uint64][]byte, len(o.acked))
	for k, v := range o.acked {
		m[k] = v
	}
	return m
}

// appendLoop appends unique records until stop is closed or count is reached.
func appendLoop(l *wal.Log, o *outcome, worker, count int, stop <-chan struct{}) {
	for i := 0; count == 0 || i < count; i++ {
		select {
		case <-stop:
			return
		default:
		}
		data := []byte(fmt.Sprintf("worker %d record %d %s", worker, i, bytes.Repeat([]byte{'x'}, (worker*7+i)%90)))
		lsn, err := l.Append(data)
		if err == nil {
			o.mu.Lock()
			o.appended[lsn] = data
			o.mu.Unlock()
			err = l.WaitDurable(context.Background(), lsn)
		}
		o.mu.Lock()
		if err == nil {
			o.acked[lsn] = data
		} else {
			o.failed = append(o.failed, data)
		}
		o.mu.Unlock()
		if err != nil {
			return
		}
	}
}

// checkRecovered opens fs without faults and checks the log against what
// the appenders were told: every acknowledged record is there at its LSN, no
// record is there that is not what was appended at that LSN, LSNs are dense
// with no duplicates, and (when checkFailed) no failed record reappears.
func checkRecovered(t *testing.T, fs wal.FS, o *outcome, acked map[uint64][]byte, checkFailed bool, what string) {
	t.Helper()
	l, err := wal.Open(wal.Options{Dir: "/wal", FS: fs})
	if err != nil {
		t.Fatalf("%s: Open refused to start: %v", what, err)
	}
	defer l.Close()
	got := readAll(t, l, 1)
	if len(got.gaps) != 0 {
		t.Fatalf("%s: gaps %+v", what, got.gaps)
	}
	for i, lsn := range got.lsns {
		if lsn != uint64(i+1) {
			t.Fatalf("%s: LSNs not dense at %d: %d", what, i, lsn)
		}
	}
	for lsn, data := range acked {
		if !bytes.Equal(got.recs[lsn], data) {
			t.Fatalf("%s: acknowledged record %d lost or changed (have %q)", what, lsn, got.recs[lsn])
		}
	}
	seen := map[string]bool{}
	o.mu.Lock()
	defer o.mu.Unlock()
	for lsn, data := range got.recs {
		if !bytes.Equal(o.appended[lsn], data) {
			t.Fatalf("%s: record %d is %q, but %q was appended there", what, lsn, data, o.appended[lsn])
		}
		if seen[string(data)] {
			t.Fatalf("%s: record %q twice", what, data)
		}
		seen[string(data)] = true
	}
	if checkFailed {
		for _, data := range o.failed {
			if seen[string(data)] {
				t.Fatalf("%s: record %q whose append failed is in the log", what, data)
			}
		}
	}
}

// runFaultWorkload runs a small concurrent workload on fs.
func runFaultWorkload(fs wal.FS, policy wal.SyncPolicy) *outcome {
	o := newOutcome()
	l, err := wal.Open(wal.Options{Dir: "/wal", FS: fs, Sync: policy, SegmentSize: 600, SyncInterval: time.Millisecond})
	if err != nil {
		return o
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { l.Run(ctx); close(done) }()
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() { appendLoop(l, o, w, 12, nil) })
	}
	wg.Wait()
	// A consumer that has read part of the log; cursor I/O errors go back
	// to the caller and are not under test here.
	_ = l.SetCursor("consumer", min(3, l.DurableLSN()))
	cancel()
	<-done
	l.Close()
	return o
}

// TestFailingEveryOperation fails the k-th file-system operation of a
// workload for every k, once and persistently, under fsync=always and
// fsync=interval: nothing acknowledged is lost, and no record whose append
// returned an error is in the log afterwards — after a restart (once) and
// after a power cut (both; a persistently failing disk cannot be cleaned
// up, see the package doc).
func TestFailingEveryOperation(t *testing.T) {
	for _, policy := range []wal.SyncPolicy{wal.SyncAlways, wal.SyncInterval} {
		probe := &waltest.ErrorFS{FS: waltest.NewMemFS()}
		runFaultWorkload(probe, policy)
		total := probe.Ops() + 5
		for _, persistent := range []bool{false, true} {
			fired, anyAcked, anyFailed := 0, 0, 0
			for k := 1; k <= total; k++ {
				mem := waltest.NewMemFS()
				efs := &waltest.ErrorFS{FS: mem, FailAt: k, Persistent: persistent}
				o := runFaultWorkload(efs, policy)
				if efs.Fired() {
					fired++
				}
				what := fmt.Sprintf("%s, fail op %d (persistent=%v)", policy, k, persistent)
				acked := o.ackedCopy()
				anyAcked += len(acked)
				anyFailed += len(o.failed)
				if !persistent {
					checkRecovered(t, mem.Snapshot(), o, acked, true, what+", restart")
				}
				checkRecovered(t, mem.Crash(nil), o, acked, true, what+", power cut")
			}
			if fired < total/2 || anyAcked == 0 || anyFailed == 0 {
				t.Fatalf("%s persistent=%v: a sweep that proves little: fault fired in %d of %d runs, %d acked, %d failed",
					policy, persistent, fired, total, anyAcked, anyFailed)
			}
		}
	}
}

// TestCrashDropsUnsyncedWrites cuts the power at random moments of a busy
// concurrent workload; unsynced data and directory entries are lost, and a
// random prefix of unsynced appends survives (torn tails).
func TestCrashDropsUnsyncedWrites(t *testing.T) {
	for _, policy := range []wal.SyncPolicy{wal.SyncAlways, wal.SyncInterval, wal.SyncNever} {
		ackedBeforeCrash := 0
		for trial := range 40 {
			rng := rand.New(rand.NewPCG(uint64(trial), 99))
			mem := waltest.NewMemFS()
			l, err := wal.Open(wal.Options{Dir: "/wal", FS: mem, Sync: policy, SegmentSize: 2048})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { l.Run(ctx); close(done) }()
			o := newOutcome()
			stop := make(chan struct{})
			var wg sync.WaitGroup
			for w := range 8 {
				wg.Go(func() { appendLoop(l, o, w, 0, stop) })
			}
			time.Sleep(time.Duration(1+rng.IntN(20)) * time.Millisecond)
			acked := o.ackedCopy() // everything acknowledged before the power cut
			crashed := mem.Crash(rng)
			close(stop)
			wg.Wait()
			cancel()
			<-done
			l.Close()
			ackedBeforeCrash += len(acked)
			if policy == wal.SyncNever {
				acked = nil // no durability promise across a power cut
			}
			checkRecovered(t, crashed, o, acked, false, fmt.Sprintf("%s trial %d (%d acked)", policy, trial, len(acked)))
		}
		if ackedBeforeCrash < 100 {
			t.Fatalf("%s: only %d records acknowledged before the crashes; the test proves little", policy, ackedBeforeCrash)
		}
	}
}
