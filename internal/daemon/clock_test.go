package daemon

import (
	"log/slog"
	"sync/atomic"
	"testing"
	"time"
)

// fakeWall is a daemon clock running on the real one plus an offset the
// test steps.
type fakeWall struct{ offset atomic.Int64 }

func (f *fakeWall) now() time.Time { return time.Now().Add(time.Duration(f.offset.Load())) }

func TestClockStepAheadIsFlaggedUntilItComesBack(t *testing.T) {
	var w fakeWall
	synced := true
	c := newClockState(true, func() bool { return synced }, w.now, slog.New(slog.DiscardHandler))
	stamp := func() int64 { return w.now().UnixNano() }
	if c.Unsynced(stamp()) || c.SteppedAhead() {
		t.Fatal("a synchronised clock without a step is flagged")
	}
	// A step ahead while synchronised: the very next reading is flagged,
	// before any tick.
	w.offset.Store(int64(time.Hour))
	if !c.Unsynced(stamp()) || !c.SteppedAhead() {
		t.Fatal("the first reading after a step of +1 h is not flagged")
	}
	c.refresh()
	if !c.Unsynced(stamp()) {
		t.Fatal("a tick took the step ahead for correct at once")
	}
	// Small drift is no step.
	w.offset.Store(int64(time.Hour + 10*time.Second))
	c.refresh()
	if !c.Unsynced(stamp()) {
		t.Fatal("still ahead, no longer flagged")
	}
	// Back: trusted again.
	w.offset.Store(0)
	if c.Unsynced(stamp()) {
		t.Fatal("the clock came back, its readings are still flagged")
	}
	c.refresh()
	if c.Unsynced(stamp()) || c.SteppedAhead() {
		t.Fatal("flagged after the clock came back")
	}
	// A step back is no reason to flag (its readings are late where
	// windows closed already).
	w.offset.Store(-int64(time.Hour))
	c.refresh()
	if c.Unsynced(stamp()) {
		t.Fatal("a step back flags readings")
	}
	// A step ahead that stays is taken as correct after the trust period.
	c.trust = 50 * time.Millisecond
	w.offset.Store(int64(87600 * time.Hour))
	c.refresh()
	if !c.Unsynced(stamp()) {
		t.Fatal("+10 years not flagged")
	}
	time.Sleep(60 * time.Millisecond)
	c.refresh()
	if c.Unsynced(stamp()) {
		t.Fatal("a step ahead still flagged after the trust period")
	}
	// The kernel's word first: unsynchronised flags everything, and the
	// synchronisation itself may step the clock.
	synced = false
	c.refresh()
	if !c.Unsynced(stamp()) {
		t.Fatal("unsynchronised, not flagged")
	}
	synced = true
	w.offset.Store(int64(2 * time.Hour))
	c.refresh()
	if c.Unsynced(stamp()) {
		t.Fatal("the step that came with the synchronisation is flagged")
	}
	// Without clock.require_sync nothing is flagged.
	off := newClockState(false, func() bool { return false }, w.now, slog.New(slog.DiscardHandler))
	if off.Unsynced(stamp() + int64(time.Hour)) {
		t.Fatal("flagged without clock.require_sync")
	}
}

// TestClockBackThenReturn: a step back, then the clock returns to where it
// was: the return is no step ahead.
func TestClockBackThenReturn(t *testing.T) {
	var w fakeWall
	c := newClockState(true, func() bool { return true }, w.now, slog.New(slog.DiscardHandler))
	w.offset.Store(-int64(time.Hour))
	c.refresh()
	if c.Unsynced(w.now().UnixNano()) {
		t.Fatal("a step back flags readings")
	}
	w.offset.Store(0)
	if c.Unsynced(w.now().UnixNano()) {
		t.Fatal("the clock returning from a step back is taken for a step ahead")
	}
	c.refresh()
	w.offset.Store(int64(time.Hour))
	if !c.Unsynced(w.now().UnixNano()) {
		t.Fatal("a real step ahead after the return is not flagged")
	}
}

// TestTickTimeStaysOnTheTrustedTimeline: while the clock is suspect of a
// step ahead, ticks carry where it should be.
func TestTickTimeStaysOnTheTrustedTimeline(t *testing.T) {
	var w fakeWall
	c := newClockState(true, func() bool { return true }, w.now, slog.New(slog.DiscardHandler))
	w.offset.Store(int64(87600 * time.Hour))
	c.refresh()
	if d := time.Duration(c.tickTime(w.now()) - time.Now().UnixNano()).Abs(); d > time.Second {
		t.Fatalf("tick %v off the real time while the clock is stepped ahead", d)
	}
	w.offset.Store(int64(-time.Hour))
	c.refresh()
	if d := time.Duration(c.tickTime(w.now()) - time.Now().Add(-time.Hour).UnixNano()).Abs(); d > time.Second {
		t.Fatalf("after a step back the tick is %v off the clock", d)
	}
}
