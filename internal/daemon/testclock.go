package daemon

import (
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"
)

// TestClockEnv names the environment variable that replaces the daemon's
// wall clock with a test clock. It is for tests only (the reliability
// suite, internal/reliability, uses it to jump the clock of a running
// edged); nothing edged ships sets it. When it names a file, the daemon's
// clock — the ingest time of every reading, the ticks, and so the
// aggregator's idle closing and the alert timers — is time.Now() plus an
// offset read from that file, at most every testClockReread:
//
//	+1h                    a Go duration: the offset itself (-1h, +87600h, 0)
//	2026-01-01T00:00:00Z   an RFC 3339 time: the clock reads it when the
//	                       content is first seen, and runs on from there
//	unsynced               on a line of its own: the clock is reported
//	                       unsynchronised (clock.require_sync)
//
// Empty lines and lines starting with # are ignored; no time line means
// offset 0. While the variable is set the kernel is not asked about
// synchronisation (it speaks of another clock): the clock is synchronised
// unless the file says unsynced. A missing or garbled file is logged once
// and the last good state kept; replace the file atomically (write, then
// rename), so that the daemon never reads half of it.
const TestClockEnv = "EDGED_TEST_CLOCK_FILE"

// testClockReread bounds how often the test clock reads its file.
const testClockReread = 100 * time.Millisecond

// daemonClock returns the daemon's clock and its synchronisation check:
// time.Now and the kernel's, or the test clock's when TestClockEnv is set.
func daemonClock(logger *slog.Logger) (now func() time.Time, synced func() bool) {
	path := os.Getenv(TestClockEnv)
	if path == "" {
		return time.Now, clockSynced
	}
	logger.Warn("the daemon's clock is the test clock ("+TestClockEnv+" is set; for tests only)", "file", path)
	c := newTestClock(path, logger.With("component", "testclock"))
	return c.Now, c.Synced
}

// testClock is the clock TestClockEnv asks for. Its methods are safe for
// concurrent use.
type testClock struct {
	path   string
	logger *slog.Logger

	mu       sync.Mutex
	next     time.Time // when the file is read again
	seen     bool      // content holds the state in effect
	content  string
	offset   time.Duration
	unsynced bool
	problem  string // the last problem logged; "" once the file reads well
}

func newTestClock(path string, logger *slog.Logger) *testClock {
	return &testClock{path: path, logger: logger}
}

// Now is time.Now() plus the offset in effect. Only the wall reading
// matters to its callers: they take UnixNano.
func (c *testClock) Now() time.Time {
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.poll(now)
	return now.Add(c.offset)
}

// Synced reports false while the file says unsynced.
func (c *testClock) Synced() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.poll(time.Now())
	return !c.unsynced
}

// poll reads the file if testClockReread has passed since the last read.
func (c *testClock) poll(now time.Time) {
	if now.Before(c.next) {
		return
	}
	c.next = now.Add(testClockReread)
	b, err := os.ReadFile(c.path)
	if err != nil {
		c.fail(err)
		return
	}
	if c.seen && string(b) == c.content {
		return // an absolute time runs on from when it was first seen
	}
	offset, unsynced, err := parseTestClock(string(b), now)
	if err != nil {
		c.fail(fmt.Errorf("%s: %w", c.path, err))
		return
	}
	c.seen, c.content, c.offset, c.unsynced, c.problem = true, string(b), offset, unsynced, ""
	c.logger.Info("test clock set", "offset", offset, "unsynced", unsynced, "now", now.Add(offset).UTC().Format(time.RFC3339Nano))
}

// fail logs a problem once (until the file reads well again, or another
// problem comes up) and keeps the state in effect.
func (c *testClock) fail(err error) {
	if msg := err.Error(); msg != c.problem {
		c.problem = msg
		c.logger.Warn("test clock: cannot use the file; keeping the last offset", "err", err, "offset", c.offset, "unsynced", c.unsynced)
	}
}

// parseTestClock parses the file's content (see TestClockEnv); an
// absolute time gives its offset from now.
func parseTestClock(content string, now time.Time) (offset time.Duration, unsynced bool, err error) {
	timed := false
	for i, line := range strings.Split(content, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
			continue
		case line == "unsynced":
			unsynced = true
			continue
		case timed:
			return 0, false, fmt.Errorf("line %d: %q: the file holds one offset or time", i+1, line)
		}
		timed = true
		if d, derr := time.ParseDuration(line); derr == nil {
			offset = d
		} else if t, terr := time.Parse(time.RFC3339Nano, line); terr == nil {
			offset = t.Sub(now)
		} else {
			return 0, false, fmt.Errorf("line %d: %q is not a duration (+1h, -1h), an RFC 3339 time or %q", i+1, line, "unsynced")
		}
	}
	return offset, unsynced, nil
}
