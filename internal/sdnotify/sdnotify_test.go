package sdnotify

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// listen opens a unixgram socket in a temp dir (or the abstract namespace)
// and points $NOTIFY_SOCKET at it, as systemd does.
func listen(t *testing.T, abstract bool) *net.UnixConn {
	t.Helper()
	name := filepath.Join(t.TempDir(), "notify")
	if abstract {
		name = fmt.Sprintf("@edged-sdnotify-test-%d-%d", os.Getpid(), time.Now().UnixNano())
	}
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	t.Setenv("NOTIFY_SOCKET", name)
	return conn
}

// recv reads one datagram, failing the test after a generous deadline.
func recv(t *testing.T, conn *net.UnixConn) string {
	t.Helper()
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 4096)
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatalf("no notification: %v", err)
	}
	return string(buf[:n])
}

// drain returns every datagram already queued on conn.
func drain(t *testing.T, conn *net.UnixConn) []string {
	t.Helper()
	var got []string
	buf := make([]byte, 4096)
	for {
		conn.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		n, err := conn.Read(buf)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return got
			}
			t.Fatal(err)
		}
		got = append(got, string(buf[:n]))
	}
}

func TestMessages(t *testing.T) {
	for _, abstract := range []bool{false, true} {
		t.Run(fmt.Sprintf("abstract=%v", abstract), func(t *testing.T) {
			conn := listen(t, abstract)
			for _, tc := range []struct {
				send func() error
				want string
			}{
				{Ready, "READY=1"},
				{func() error { return Status("42 readings/s\nwal ok") }, "STATUS=42 readings/s wal ok"},
				{Watchdog, "WATCHDOG=1"},
				{Stopping, "STOPPING=1"},
				{func() error { return Notify("READY=1\nSTATUS=up") }, "READY=1\nSTATUS=up"},
			} {
				if err := tc.send(); err != nil {
					t.Fatal(err)
				}
				if got := recv(t, conn); got != tc.want {
					t.Errorf("got %q, want %q", got, tc.want)
				}
			}
		})
	}
}

func TestNoSocketIsNoOp(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	t.Setenv("WATCHDOG_USEC", "1000000")
	for _, f := range []func() error{Ready, Stopping, Watchdog, func() error { return Status("x") }} {
		if err := f(); err != nil {
			t.Errorf("without NOTIFY_SOCKET: %v", err)
		}
	}
	if err := Run(context.Background(), nil); err != nil {
		t.Errorf("Run without NOTIFY_SOCKET: %v", err)
	}
}

func TestMissingSocketIsAnError(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", filepath.Join(t.TempDir(), "gone"))
	if err := Ready(); err == nil {
		t.Error("Ready to a socket that does not exist: no error")
	}
}

func TestWatchdogInterval(t *testing.T) {
	me := strconv.Itoa(os.Getpid())
	for _, tc := range []struct {
		usec, pid string
		want      time.Duration
		ok        bool
	}{
		{"", "", 0, false},
		{"30000000", "", 30 * time.Second, true},
		{"30000000", me, 30 * time.Second, true},
		{"30000000", "1", 0, false}, // inherited by a child: not ours
		{"30000000", "x", 0, false},
		{"0", "", 0, false},
		{"-5", "", 0, false},
		{"soon", "", 0, false},
		{"9223372036854775807", "", 0, false}, // overflows a Duration
	} {
		t.Setenv("WATCHDOG_USEC", tc.usec)
		t.Setenv("WATCHDOG_PID", tc.pid)
		got, ok := WatchdogInterval()
		if got != tc.want || ok != tc.ok {
			t.Errorf("USEC=%q PID=%q: got %v %v, want %v %v", tc.usec, tc.pid, got, ok, tc.want, tc.ok)
		}
	}
}

func TestRunWithoutWatchdogReturns(t *testing.T) {
	listen(t, false)
	t.Setenv("WATCHDOG_USEC", "")
	if err := Run(context.Background(), func() bool { t.Error("healthy called"); return true }); err != nil {
		t.Fatal(err)
	}
}

// TestRunPingsOnlyWhileHealthy steps Run through its checks one at a time:
// healthy blocks until the test answers, so what reaches the socket after
// each answer is exactly what that answer caused.
func TestRunPingsOnlyWhileHealthy(t *testing.T) {
	conn := listen(t, false)
	t.Setenv("WATCHDOG_USEC", "2000") // pings every 1ms
	t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()))
	answers := make(chan bool)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, func() bool { return <-answers }) }()

	answers <- true
	if got := recv(t, conn); got != "WATCHDOG=1" {
		t.Fatalf("got %q", got)
	}
	for range 5 {
		answers <- false
	}
	answers <- true // the five unhealthy checks are over once this one is taken
	if got := drain(t, conn); len(got) != 1 || got[0] != "WATCHDOG=1" {
		t.Fatalf("after 5 unhealthy checks and 1 healthy one: %q, want a single WATCHDOG=1", got)
	}
	cancel()
	for {
		select {
		case answers <- false: // Run may check again before it sees ctx end
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			return
		}
	}
}

// TestRunPace checks, on a fake clock, that Run pings at once and then at
// half the watchdog interval.
func TestRunPace(t *testing.T) {
	conn := listen(t, false)
	t.Setenv("WATCHDOG_USEC", "30000000") // WatchdogSec=30s, as in edged.service
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		checks := 0
		go func() { done <- Run(ctx, func() bool { checks++; return true }) }()
		time.Sleep(60*time.Second + time.Millisecond)
		synctest.Wait()
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if checks != 5 { // t=0, 15, 30, 45, 60s
			t.Errorf("healthy checked %d times in 60s, want 5", checks)
		}
	})
	if got := drain(t, conn); len(got) != 5 {
		t.Errorf("%d pings in 60s, want 5: %q", len(got), got)
	}
}
