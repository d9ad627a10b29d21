package ship

import (
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edged-io/edged/internal/servicetest"
	"github.com/edged-io/edged/sync/ship/shiptest"
	"github.com/edged-io/edged/wal"
)

// fakeSetup is a readings log with n single-reading records and options
// for a shipper writing to a fake server.
func fakeSetup(t *testing.T, n int) (*shiptest.Server, *wal.Log, Options) {
	t.Helper()
	srv := shiptest.NewServer(t)
	l := testLog(t, filepath.Join(t.TempDir(), "wal"), wal.Options{})
	for i := range n {
		appendReadings(t, l, reading("s", t0+int64(i), float64(i)))
	}
	return srv, l, Options{URL: srv.URL, Bucket: "edged/autogen", Device: "pi", Readings: l, Token: "user:s3cret-pass",
		FlushInterval: 10 * time.Millisecond, BackoffMin: 100 * time.Millisecond, BackoffMax: 800 * time.Millisecond,
		FinalDeadline: 100 * time.Millisecond}
}

// readingLines returns the accepted reading lines, checking that none came
// twice.
func readingLines(t *testing.T, srv *shiptest.Server) []string {
	t.Helper()
	var out []string
	seen := map[string]bool{}
	for _, l := range srv.Accepted() {
		if strings.HasPrefix(l, mReading+",") {
			if seen[l] {
				t.Errorf("line accepted twice: %s", l)
			}
			seen[l] = true
			out = append(out, l)
		}
	}
	return out
}

func TestTooLargeHalves(t *testing.T) {
	t.Parallel()
	srv, l, o := fakeSetup(t, 10)
	srv.Respond(func(r *shiptest.Request) shiptest.Response {
		if len(r.Lines) > 3 {
			return shiptest.Response{Status: http.StatusRequestEntityTooLarge, Message: "Request Entity Too Large"}
		}
		return shiptest.Response{}
	})
	s := newShipper(t, o).start(t)
	waitFor(t, 10*time.Second, "catching up", caughtUp(s.Shipper))
	s.stop(t)
	if got := readingLines(t, srv); len(got) != 10 {
		t.Fatalf("%d reading lines accepted, want 10", len(got))
	}
	var sizes []int
	for _, r := range srv.Requests() {
		sizes = append(sizes, len(r.Lines))
	}
	// 10 readings + the progress point: 11 → 5 → 2, 3; 6 → 3, 3.
	if want := []int{11, 5, 2, 3, 6, 3, 3}; !slices.Equal(sizes[:7], want) {
		t.Fatalf("request sizes %v, want %v…", sizes, want)
	}
	if c, _ := l.Cursor(DefaultCursor); c != 10 {
		t.Fatalf("cursor %d, want 10", c)
	}
	if s.maxBytes >= DefaultBatchBytes {
		t.Fatalf("batch byte bound not lowered: %d", s.maxBytes)
	}
	if n := len(s.recordedSleeps()); n != 0 {
		t.Fatalf("%d backoff sleeps; a 413 needs none", n)
	}
	wire := 0
	for _, r := range srv.Requests() {
		wire += r.WireBytes
	}
	if st := s.Stats(); wire == 0 || st.WireBytes != uint64(wire) {
		t.Fatalf("wire bytes %d, the server received %d", st.WireBytes, wire)
	}
}

func TestRetryAfter(t *testing.T) {
	t.Parallel()
	srv, l, o := fakeSetup(t, 3)
	date := time.Now().Add(30 * time.Second).UTC().Format(http.TimeFormat)
	srv.Push(
		shiptest.Response{Status: http.StatusTooManyRequests, RetryAfter: "7"},
		shiptest.Response{Status: http.StatusServiceUnavailable, RetryAfter: date},
		shiptest.Response{Status: http.StatusBadGateway},
		shiptest.Response{Status: http.StatusInternalServerError},
	)
	ts := newShipper(t, o)
	ts.jitter = func(n int64) int64 { return n - 1 } // the ceiling: deterministic
	ts.start(t)
	waitFor(t, 10*time.Second, "catching up", caughtUp(ts.Shipper))
	ts.stop(t)
	sleeps := ts.recordedSleeps()
	if len(sleeps) != 4 || sleeps[0] != 7*time.Second || sleeps[1] < 28*time.Second || sleeps[1] > 31*time.Second ||
		sleeps[2] != 4*o.BackoffMin || sleeps[3] != o.BackoffMax {
		t.Fatalf("sleeps %v, want [7s ~30s %v %v]", sleeps, 4*o.BackoffMin, o.BackoffMax)
	}
	if st := ts.Stats(); st.Retries != 4 || !strings.Contains(st.LastError, "500") {
		t.Fatalf("stats %+v", st)
	}
	if got := readingLines(t, srv); len(got) != 3 {
		t.Fatalf("%d reading lines, want 3", len(got))
	}
	if c, _ := l.Cursor(DefaultCursor); c != 3 {
		t.Fatalf("cursor %d", c)
	}
}

func TestBackoffJitter(t *testing.T) {
	s, err := New(Options{URL: "http://x", Bucket: "b", Device: "d", Readings: &wal.Log{},
		BackoffMin: time.Second, BackoffMax: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	for attempt := range 70 {
		ceil := time.Minute
		if attempt < 63 && time.Second<<attempt/time.Second == 1<<attempt && time.Second<<attempt < ceil {
			ceil = time.Second << attempt
		}
		for range 20 {
			if d := s.backoff(attempt); d <= 0 || d > ceil {
				t.Fatalf("attempt %d: backoff %v outside (0, %v]", attempt, d, ceil)
			}
		}
	}
}

func TestSlowAndFailingServer(t *testing.T) {
	t.Parallel()
	srv, l, o := fakeSetup(t, 5)
	o.Timeout = 100 * time.Millisecond
	srv.Push(
		shiptest.Response{Status: http.StatusServiceUnavailable},
		shiptest.Response{Delay: 10 * time.Second}, // no answer within Timeout
		shiptest.Response{Status: http.StatusInternalServerError},
	)
	s := newShipper(t, o).start(t)
	waitFor(t, 10*time.Second, "catching up", caughtUp(s.Shipper))
	s.stop(t)
	if st := s.Stats(); st.Retries != 3 {
		t.Fatalf("%d retries, want 3 (%+v)", st.Retries, st)
	}
	if got := readingLines(t, srv); len(got) != 5 {
		t.Fatalf("%d reading lines, want 5", len(got))
	}
	if c, _ := l.Cursor(DefaultCursor); c != 5 {
		t.Fatalf("cursor %d", c)
	}
}

func TestPauseOnAuth(t *testing.T) {
	for _, status := range []int{http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			t.Parallel()
			srv, l, o := fakeSetup(t, 4)
			var fixed atomic.Bool
			srv.Respond(func(*shiptest.Request) shiptest.Response {
				if !fixed.Load() {
					return shiptest.Response{Status: status, Message: "unauthorized access"}
				}
				return shiptest.Response{}
			})
			var mu sync.Mutex
			var alerts []string
			o.Alert = func(reason string) {
				mu.Lock()
				alerts = append(alerts, reason)
				mu.Unlock()
			}
			var logs servicetest.LogBuffer
			o.Logger = logs.Logger()
			s := newShipper(t, o).start(t)
			waitFor(t, 10*time.Second, "paused", s.Paused)
			waitFor(t, 10*time.Second, "re-probes", func() bool { return len(srv.Requests()) >= 5 })
			if c, _ := l.Cursor(DefaultCursor); c != 0 {
				t.Fatalf("cursor moved to %d while paused", c)
			}
			if st := s.Stats(); !st.Paused || !strings.Contains(st.PauseReason, fmt.Sprint(status)) ||
				st.LagRecords != 4 || st.LagBytes <= 0 || st.Lag < time.Hour { // the readings are from 2024
				t.Fatalf("stats %+v", st)
			}
			if n := strings.Count(logs.String(), "ship: paused"); n != 1 {
				t.Fatalf("pause logged %d times, want once:\n%s", n, logs.String())
			}
			fixed.Store(true)
			waitFor(t, 10*time.Second, "catching up", caughtUp(s.Shipper))
			s.stop(t)
			if s.Paused() {
				t.Fatal("still paused")
			}
			mu.Lock()
			defer mu.Unlock()
			if len(alerts) != 2 || !strings.Contains(alerts[0], "unauthorized") || alerts[1] != "" {
				t.Fatalf("alerts %q, want [reason, \"\"]", alerts)
			}
			for _, d := range s.recordedSleeps() {
				if d > o.BackoffMax {
					t.Fatalf("re-probe after %v, beyond BackoffMax", d)
				}
			}
			if got := readingLines(t, srv); len(got) != 4 {
				t.Fatalf("%d reading lines, want 4", len(got))
			}
		})
	}
}

// TestTokenRedacted: a server that echoes the token in its errors does not
// get it into the stats or the log.
func TestTokenRedacted(t *testing.T) {
	t.Parallel()
	srv, _, o := fakeSetup(t, 2)
	srv.Push(shiptest.Response{Status: 500}) // then echo below
	srv.Respond(func(r *shiptest.Request) shiptest.Response {
		return shiptest.Response{Status: http.StatusServiceUnavailable, Message: "overloaded; your header was " + r.Auth}
	})
	var logs servicetest.LogBuffer
	o.Logger = logs.Logger()
	s := newShipper(t, o).start(t)
	waitFor(t, 10*time.Second, "retries", func() bool { return s.Stats().Retries >= 3 })
	s.stop(t)
	st := s.Stats()
	if !strings.Contains(st.LastError, "[redacted]") {
		t.Fatalf("last error %q: the echo did not arrive", st.LastError)
	}
	for what, text := range map[string]string{"stats": fmt.Sprintf("%+v", st), "log": logs.String()} {
		if strings.Contains(text, "s3cret-pass") {
			t.Fatalf("%s holds the token:\n%s", what, text)
		}
	}
}

// TestFinalAttempt: on shutdown the shipper ships what the log holds.
func TestFinalAttempt(t *testing.T) {
	t.Parallel()
	srv, l, o := fakeSetup(t, 0)
	o.FlushInterval = time.Hour // only a full batch or the final attempt ships
	o.FinalDeadline = 5 * time.Second
	s := newShipper(t, o).start(t)
	for i := range 7 {
		appendReadings(t, l, reading("s", t0+int64(i), 1))
	}
	// The shipper reads durable records only (the daemon makes the log
	// durable before the final attempt).
	waitFor(t, 10*time.Second, "durable", func() bool { return l.DurableLSN() >= 7 })
	s.stop(t)
	if got := readingLines(t, srv); len(got) != 7 {
		t.Fatalf("%d reading lines, want 7", len(got))
	}
	if c, _ := l.Cursor(DefaultCursor); c != 7 {
		t.Fatalf("cursor %d", c)
	}
}

// TestDrainProgressLog: while a backlog drains, the shipper logs its rate,
// what remains and an ETA.
func TestDrainProgressLog(t *testing.T) {
	t.Parallel()
	_, _, o := fakeSetup(t, 300)
	o.BatchSize, o.ProgressEvery = 20, time.Nanosecond
	var logs servicetest.LogBuffer
	o.Logger = logs.Logger()
	s := newShipper(t, o).start(t)
	waitFor(t, 10*time.Second, "catching up", caughtUp(s.Shipper))
	s.stop(t)
	out := logs.String()
	if !strings.Contains(out, "ship: draining backlog") || !strings.Contains(out, "remaining_records=") || !strings.Contains(out, "eta=") {
		t.Fatalf("no progress line:\n%s", out)
	}
	if st := s.Stats(); st.Batches < 15 || st.Lag != 0 || st.LagRecords != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestCloseIdempotent(t *testing.T) {
	t.Parallel()
	_, _, o := fakeSetup(t, 1)
	s := newShipper(t, o)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Run(t.Context()); err != ErrClosed {
		t.Fatalf("Run after Close = %v, want ErrClosed", err)
	}
}
