package daemon

import (
	"context"
	"fmt"
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
}

func (t ticker) Run(ctx context.Context) error {
	tk := time.NewTicker(t.interval)
	defer tk.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-tk.C:
			t.clock.refresh()
			if _, err := t.log.Append(edged.AppendTick(nil, now.UnixNano())); err != nil {
				return fmt.Errorf("tick: %w", err)
			}
		}
	}
}

// clockState implements clock.require_sync: while the kernel reports the
// clock unsynchronised (adjtimex: a Raspberry Pi before NTP has set its
// clock, since it has no RTC), readings stamped with the ingest clock are
// flagged edged.ClockUnsynced, so the aggregator keeps them out of current
// windows (they stay in the log and are shipped as untrusted).
type clockState struct {
	require  bool
	unsynced atomic.Bool
}

func newClockState(require bool) *clockState {
	c := &clockState{require: require}
	c.refresh()
	return c
}

func (c *clockState) refresh() {
	if c.require {
		c.unsynced.Store(!clockSynced())
	}
}
