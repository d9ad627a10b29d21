package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/edged-io/edged"
	"github.com/edged-io/edged/wal"
)

// ticker logs a processing-time instant every interval (see
// edged.KindTick): the aggregator closes idle windows and the alert engine
// runs its timers on these, so a replay repeats their decisions. It also
// refreshes what the kernel says about the clock's synchronisation.
type ticker struct {
	log      *wal.Log
	interval time.Duration
	clock    *clockState
	now      func() time.Time // the daemon's clock, not the ticker's
}

func (t ticker) Run(ctx context.Context) error {
	tk := time.NewTicker(t.interval)
	defer tk.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tk.C:
			t.clock.refresh()
			if _, err := t.log.Append(edged.AppendTick(nil, t.clock.tickTime(t.now()))); err != nil {
				return fmt.Errorf("tick: %w", err)
			}
		}
	}
}

// clockState implements clock.require_sync: readings stamped with the
// ingest clock are flagged edged.ClockUnsynced, so the aggregator keeps
// them out of current windows (they stay in the log and are shipped as
// untrusted), while
//
//   - the kernel reports the clock unsynchronised (adjtimex: a Raspberry Pi
//     before NTP has set its clock, since it has no RTC; and after any step
//     of the clock by date or settimeofday, until NTP confirms it), or
//   - the clock has stepped ahead by more than clockStep while the kernel
//     reported it synchronised (a wrong NTP source, a GPS glitch), until it
//     comes back or for stepTrust, after which the new time is accepted.
//     Readings stamped while the clock is wrongly ahead would otherwise move
//     their series' watermarks ahead, and every reading after its return
//     would be late until the real time caught up (an hour, ten years).
//
// The step is measured against the monotonic clock, from a base the ticker
// refreshes every second; Unsynced checks each reading against it, so the
// first reading after a step is flagged, not only those after the next tick.
type clockState struct {
	require bool
	synced  func() bool      // clockSynced, or the test clock's
	now     func() time.Time // the daemon's clock
	logger  *slog.Logger

	trust          time.Duration // stepTrust
	kernelUnsynced atomic.Bool
	base           atomic.Pointer[clockBase]
	// Owned by refresh (the ticker's goroutine).
	ahead      bool
	aheadSince time.Time
}

// clockBase pairs a reading of the daemon's clock with the monotonic
// clock. prev, after a step back, is the timeline the clock left: a step
// ahead that returns to it is the clock coming back, not a step ahead.
type clockBase struct {
	wall int64
	mono time.Time
	prev *clockBase
}

// at is where the base says the clock should be at mono.
func (b *clockBase) at(mono time.Time) int64 { return b.wall + int64(mono.Sub(b.mono)) }

// offset is how far t is from where the base says the clock should be.
func (b *clockBase) offset(t int64, mono time.Time) time.Duration {
	return time.Duration(t - b.at(mono))
}

// ahead reports whether t is ahead of both timelines by more than a step.
func (b *clockBase) ahead(t int64, mono time.Time) bool {
	return b.offset(t, mono) > clockStep && (b.prev == nil || b.prev.offset(t, mono).Abs() > clockStep)
}

const (
	// clockStep is the smallest jump of the clock taken for a step (the
	// alert engine's ClockStep).
	clockStep = time.Minute
	// stepTrust is how long a step ahead stays suspect.
	stepTrust = 10 * time.Minute
)

func newClockState(require bool, synced func() bool, now func() time.Time, logger *slog.Logger) *clockState {
	c := &clockState{require: require, synced: synced, now: now, logger: logger, trust: stepTrust}
	c.refresh()
	return c
}

// Unsynced reports whether a reading stamped t (ns) by the ingest clock
// must be flagged edged.ClockUnsynced.
func (c *clockState) Unsynced(t int64) bool {
	if !c.require {
		return false
	}
	if c.kernelUnsynced.Load() {
		return true
	}
	b := c.base.Load()
	return b != nil && b.ahead(t, time.Now())
}

// tickTime is the processing time a tick logs: now, or, while now is
// suspect of a step ahead, where the clock should be. The aggregator closes
// idle windows and the alert engine runs its timers on ticks: a step
// ahead would close every open window at once (the series look idle for
// the size of the step) and make the readings after the clock's return
// late.
func (c *clockState) tickTime(now time.Time) int64 {
	wall := now.UnixNano()
	if !c.require || c.kernelUnsynced.Load() {
		return wall
	}
	mono := time.Now()
	if b := c.base.Load(); b != nil && b.ahead(wall, mono) {
		return b.at(mono)
	}
	return wall
}

// SteppedAhead reports whether the clock is now suspect of a step ahead.
func (c *clockState) SteppedAhead() bool {
	return c.require && !c.kernelUnsynced.Load() && c.Unsynced(c.now().UnixNano())
}

func (c *clockState) refresh() {
	if !c.require {
		return
	}
	was := c.kernelUnsynced.Load()
	unsynced := !c.synced()
	c.kernelUnsynced.Store(unsynced)
	wall, mono := c.now().UnixNano(), time.Now()
	b := c.base.Load()
	if unsynced || was || b == nil {
		// Unsynchronised, or synchronised just now (a step then is the
		// clock being set): the clock is the base.
		c.base.Store(&clockBase{wall, mono, nil})
		c.ahead = false
		return
	}
	off := b.offset(wall, mono)
	prev := b.prev
	if prev != nil && mono.Sub(prev.mono) >= c.trust {
		prev = nil // forget the timeline left too long ago
	}
	switch {
	case off.Abs() <= clockStep:
		c.ahead = false
		c.base.Store(&clockBase{wall, mono, prev}) // follow slewing and drift
	case prev != nil && prev.offset(wall, mono).Abs() <= clockStep:
		c.logger.Info("the clock came back from its step back", "offset", prev.offset(wall, mono).Round(time.Millisecond))
		c.ahead = false
		c.base.Store(&clockBase{wall, mono, nil})
	case off > clockStep && !c.ahead:
		c.ahead, c.aheadSince = true, mono
		c.logger.Warn("the clock stepped ahead while synchronised: readings stamped with it are flagged clock_unsynced until it comes back", "step", off.Round(time.Second), "for_at_most", c.trust)
	case off > clockStep && mono.Sub(c.aheadSince) >= c.trust:
		c.logger.Warn("the clock stayed ahead: taking its time as correct", "step", off.Round(time.Second))
		c.ahead = false
		c.base.Store(&clockBase{wall, mono, nil})
	case off > clockStep:
	default: // a step back
		c.logger.Warn("the clock stepped back while synchronised: readings it stamps are late for windows already closed", "step", off.Round(time.Second))
		c.ahead = false
		c.base.Store(&clockBase{wall, mono, &clockBase{b.wall, b.mono, nil}})
	}
}
