package daemon

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/edged-io/edged"
	"github.com/edged-io/edged/wal"
)

func TestParseTestClock(t *testing.T) {
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		content  string
		offset   time.Duration
		unsynced bool
		bad      bool
	}{
		{content: "", offset: 0},
		{content: "+1h\n", offset: time.Hour},
		{content: "-1h", offset: -time.Hour},
		{content: "+87600h", offset: 87600 * time.Hour},
		{content: "0", offset: 0},
		{content: "  +1h30m  \n\n", offset: 90 * time.Minute},
		{content: "2026-01-01T00:00:00Z", offset: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Sub(now)},
		{content: "1970-01-01T00:00:00Z\nunsynced\n", offset: -now.Sub(time.Unix(0, 0)), unsynced: true},
		{content: "unsynced", offset: 0, unsynced: true},
		{content: "# a comment\n-2s\nunsynced", offset: -2 * time.Second, unsynced: true},
		{content: "1h", offset: time.Hour},
		{content: "+1", bad: true},
		{content: "tomorrow", bad: true},
		{content: "+1h\n-1h", bad: true},
		{content: "UNSYNCED", bad: true},
		{content: "2026-01-01", bad: true},
	} {
		offset, unsynced, err := parseTestClock(tc.content, now)
		if tc.bad {
			if err == nil {
				t.Errorf("%q: accepted (offset %v)", tc.content, offset)
			}
			continue
		}
		if err != nil || offset != tc.offset || unsynced != tc.unsynced {
			t.Errorf("%q = %v, %v, %v; want %v, %v", tc.content, offset, unsynced, err, tc.offset, tc.unsynced)
		}
	}
}

// writeClock replaces the file atomically, as TestClockEnv asks.
func writeClock(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path+".tmp", []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		t.Fatal(err)
	}
}

// near reports whether got is within 1 ms of want (the bubble's clock
// stands still, but file reads are real work).
func near(got, want time.Time) bool {
	d := got.Sub(want)
	return d > -time.Millisecond && d < time.Millisecond
}

func TestTestClockFollowsTheFile(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "clock")
		var logs bytes.Buffer
		c := newTestClock(path, slog.New(slog.NewTextHandler(&logs, nil)))

		// Missing file: the real time, synchronised, one warning.
		for range 3 {
			if got := c.Now(); !near(got, time.Now()) || !c.Synced() {
				t.Fatalf("no file: %v, synced %v; want %v", got, c.Synced(), time.Now())
			}
			time.Sleep(testClockReread)
		}
		if n := strings.Count(logs.String(), "cannot use the file"); n != 1 {
			t.Fatalf("missing file logged %d times:\n%s", n, logs.String())
		}

		writeClock(t, path, "+1h\n")
		time.Sleep(testClockReread)
		if got := c.Now(); !near(got, time.Now().Add(time.Hour)) {
			t.Fatalf("+1h: %v, want %v", got, time.Now().Add(time.Hour))
		}

		// Within testClockReread of the last read the file is not read.
		writeClock(t, path, "-1h\nunsynced\n")
		time.Sleep(testClockReread / 2)
		if got := c.Now(); !near(got, time.Now().Add(time.Hour)) || !c.Synced() {
			t.Fatalf("read again before %v: %v", testClockReread, got)
		}
		time.Sleep(testClockReread / 2)
		if got := c.Now(); !near(got, time.Now().Add(-time.Hour)) || c.Synced() {
			t.Fatalf("-1h unsynced: %v synced %v", got, c.Synced())
		}

		// An absolute time is taken when first seen and runs on from there.
		boot := time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC)
		writeClock(t, path, boot.Format(time.RFC3339)+"\nunsynced\n")
		time.Sleep(testClockReread)
		if got := c.Now(); !near(got, boot) {
			t.Fatalf("boot: %v, want %v", got, boot)
		}
		time.Sleep(5 * time.Second)
		if got := c.Now(); !near(got, boot.Add(5*time.Second)) || c.Synced() {
			t.Fatalf("5 s after boot: %v (synced %v), want %v", got, c.Synced(), boot.Add(5*time.Second))
		}

		// Garbled, then missing: the last good state stays, each logged once.
		logs.Reset()
		writeClock(t, path, "+1h garbled")
		for range 3 {
			time.Sleep(testClockReread)
			c.Now()
		}
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
		for range 3 {
			time.Sleep(testClockReread)
			c.Now()
		}
		want := boot.Add(5*time.Second + 6*testClockReread)
		if got := c.Now(); !near(got, want) || c.Synced() {
			t.Fatalf("garbled then missing: %v (synced %v), want %v unsynced", got, c.Synced(), want)
		}
		if g, m := strings.Count(logs.String(), "is not a duration"), strings.Count(logs.String(), "no such file"); g != 1 || m != 1 {
			t.Fatalf("garbled logged %d times, missing %d times:\n%s", g, m, logs.String())
		}

		// Synced: back to the real time.
		writeClock(t, path, "0s\n")
		time.Sleep(testClockReread)
		if got := c.Now(); !near(got, time.Now()) || !c.Synced() {
			t.Fatalf("0s: %v synced %v", got, c.Synced())
		}
	})
}

func TestDaemonClockWithoutTheVariableIsTheSystemClock(t *testing.T) {
	t.Setenv(TestClockEnv, "")
	var logs bytes.Buffer
	now, _ := daemonClock(slog.New(slog.NewTextHandler(&logs, nil)))
	if d := time.Since(now()); d < 0 || d > time.Second || logs.Len() != 0 {
		t.Fatalf("now() is %v from time.Now; logs %q", d, logs.String())
	}
}

// TestDaemonRunsOnTheTestClock: with TestClockEnv set, the simulated
// sensor's readings and the ticks follow the file, and its unsynced line
// makes clock.require_sync flag them.
func TestDaemonRunsOnTheTestClock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "clock")
	writeClock(t, path, "+87600h\nunsynced\n")
	t.Setenv(TestClockEnv, path)
	c := testConfig(t, "aggregate: {windows: [200ms, 1s], lateness: 50ms}\nclock: {require_sync: true}\n")
	c.Sensors.Thermal.Enabled = false
	d, stopOnce := start(t, c)
	stop := sync.OnceValue(stopOnce)
	defer stop()
	base := "http://" + d.Addr()
	ahead := time.Now().Add(87600 * time.Hour)
	query := func() (count, untrusted float64, rows int) {
		_, body := get(t, base+fmt.Sprintf("/api/v1/query?series=sim/1&window=200ms&from=%d&to=%d",
			ahead.Add(-time.Minute).Unix(), ahead.Add(time.Hour).Unix()), "")
		var q struct {
			Rows []struct {
				Fields map[string]float64 `json:"fields"`
			} `json:"rows"`
		}
		if err := json.Unmarshal([]byte(body), &q); err != nil {
			t.Fatalf("query: %v %s", err, body)
		}
		for _, r := range q.Rows {
			count += r.Fields["count"]
			untrusted += r.Fields["untrusted"]
		}
		return count, untrusted, len(q.Rows)
	}
	// Unsynced: the readings, ten years ahead, are flagged (counted
	// untrusted on their windows: the ticks move the amendments out).
	waitUntil(t, 5*time.Second, func() bool { _, u, _ := query(); return u > 0 })
	if n, _, _ := query(); n != 0 {
		t.Fatalf("unsynced readings counted in windows: %v", n)
	}
	if _, m := get(t, base+"/metrics", ""); !strings.Contains(m, "edged_clock_synced 0") {
		t.Error("edged_clock_synced is not 0 while the test clock says unsynced")
	}
	writeClock(t, path, "+87600h\n")
	waitUntil(t, 5*time.Second, func() bool { n, _, _ := query(); return n > 0 })
	if _, m := get(t, base+"/metrics", ""); !strings.Contains(m, "edged_clock_synced 1") {
		t.Error("edged_clock_synced is not 1 once the test clock is synced")
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	// Every reading and tick in the log is ten years ahead.
	l, err := wal.OpenReadOnly(wal.Options{Dir: filepath.Join(c.DataDir, "wal")})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	r := l.NewReader(1)
	defer r.Close()
	var ticks, readings int
	for {
		rec, err := r.Next()
		if err != nil {
			break
		}
		var ts []int64
		if edged.Kind(rec.Data) == edged.KindTick {
			now, err := edged.DecodeTick(rec.Data)
			if err != nil {
				t.Fatal(err)
			}
			ts, ticks = append(ts, now), ticks+1
		} else {
			rs, err := edged.DecodeRecord(nil, rec.Data, rec.LSN)
			if err != nil {
				t.Fatal(err)
			}
			for _, x := range rs {
				ts, readings = append(ts, x.Time, x.Ingest), readings+1
			}
		}
		for _, x := range ts {
			if d := time.Unix(0, x).Sub(ahead); d < -time.Minute || d > time.Minute {
				t.Fatalf("record %d: time %v is not ten years ahead", rec.LSN, time.Unix(0, x).UTC())
			}
		}
	}
	if ticks == 0 || readings == 0 {
		t.Fatalf("%d ticks, %d readings in the log", ticks, readings)
	}
}

func waitUntil(t *testing.T, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v", timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
