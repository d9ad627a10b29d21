package reliability

import (
	"context"
	"math"
	"os"
	"testing"
	"time"
)

// knownBugs are edged bugs this suite found, reported to the lead and
// described in RELIABILITY.md ("Known bugs"). A test whose criterion one
// of them breaks measures the damage and records it in its figures; the
// criterion fails the test only with EDGED_RELIABILITY_KNOWN_BUGS=1, so
// that `make test` stays usable until the fix lands. Remove an entry with
// its fix: the criterion is then always enforced.
//
// All seven found so far (views-not-durable, views-drop-older,
// views-disk-partition, views-refuse-start, dir-fsync, clock-ahead-stalls,
// views-head-memory) are fixed and their criteria enforced; RELIABILITY.md
// keeps their history.
var knownBugs = map[string]string{}

// enforced reports whether the criterion that known bug name breaks fails
// the test; when it does not, it says so in the log.
func enforced(t *testing.T, name string) bool {
	t.Helper()
	desc, ok := knownBugs[name]
	if !ok {
		return true // fixed: always enforced
	}
	if os.Getenv("EDGED_RELIABILITY_KNOWN_BUGS") == "1" {
		return true
	}
	t.Logf("known bug %q (%s): its criterion is measured, not enforced; EDGED_RELIABILITY_KNOWN_BUGS=1 enforces it", name, desc)
	return false
}

// TestMixedEventTimeFronts runs a local sensor (event time = now) beside
// MQTT readings whose device clocks are two minutes behind, a common sight
// (a gateway flushing a buffer, a device with a lagging clock). No fault
// is injected.
//
// Pass criterion: the windows of the MQTT series are served exactly, as
// without the local sensor. Known bug "views-drop-older".
func TestMixedEventTimeFronts(t *testing.T) {
	t.Parallel()
	fig := newFigures(t)
	e := newEnv(t, envOptions{device: "rel-mixed"})
	e.cfg.SimInterval = 20 * time.Millisecond
	d := e.start()
	load := NewLoad(5, 10*time.Millisecond, 2*time.Minute)
	pub, err := NewPublisher(e.broker.URL, load)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	ctx, stop := context.WithTimeout(context.Background(), 6*time.Second)
	defer stop()
	n := pub.Publish(ctx, 0, math.MaxInt32, 500, nil)
	if err := pub.Finish(n, time.Minute); err != nil {
		t.Fatal(err)
	}
	enforce := enforced(t, "views-drop-older")
	timeout := 3 * time.Second
	if enforce {
		timeout = 30 * time.Second
	}
	win := CompareWindows(t, d, load, n, windowSizes, timeout)
	if bad := win.Missing + win.Wrong + win.Extra; bad > 0 && enforce {
		t.Errorf("windows: %d missing, %d wrong of %d: %v", win.Missing, win.Wrong, win.Windows, win.Problems)
	}
	want := load.Want(n, true)
	walDiff := e.checkWAL(want)
	fig.add("local sensor at now + 5 MQTT series 2 min behind: %d of %d MQTT windows missing from /api/v1/query, %d wrong (known bug views-drop-older); WAL missing %d",
		win.Missing, win.Windows, win.Wrong, len(walDiff.Missing))
}
