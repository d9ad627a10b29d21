// Package sdnotify tells systemd how a Type=notify service is doing: that it
// is ready, that it is stopping, a one-line status, and that it is alive
// (the watchdog). It speaks the sd_notify(3) datagram protocol over
// $NOTIFY_SOCKET itself, with the standard library only.
//
// Outside systemd (no $NOTIFY_SOCKET) every call is a no-op that returns
// nil, so a daemon calls these unconditionally.
//
// The watchdog is on when the unit sets WatchdogSec=: systemd then passes
// $WATCHDOG_USEC (and $WATCHDOG_PID), and kills and restarts a service that
// stays silent for that long. Run pings at half that interval, but only
// while the service says it is healthy, so a wedged daemon gets restarted
// instead of being kept alive by a timer that still ticks.
package sdnotify

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

// Notify sends state, one or more newline-separated VAR=value assignments
// (see sd_notify(3)), to the socket named by $NOTIFY_SOCKET: a path, or an
// abstract socket when it starts with '@'. Without $NOTIFY_SOCKET it does
// nothing and returns nil.
func Notify(state string) error {
	addr, ok := socket()
	if !ok {
		return nil
	}
	conn, err := dial(addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	return send(conn, state)
}

// Ready tells systemd that start-up finished (READY=1): a Type=notify unit
// counts as started, and units ordered after it start, only then.
func Ready() error { return Notify("READY=1") }

// Stopping tells systemd that the service began its shutdown (STOPPING=1).
func Stopping() error { return Notify("STOPPING=1") }

// Status sets the one-line status `systemctl status` shows (STATUS=...).
// Newlines would end the assignment, so they become spaces.
func Status(s string) error {
	return Notify("STATUS=" + strings.ReplaceAll(s, "\n", " "))
}

// Watchdog tells systemd that the service is alive (WATCHDOG=1).
func Watchdog() error { return Notify("WATCHDOG=1") }

// WatchdogInterval reports the watchdog timeout systemd enforces for this
// process ($WATCHDOG_USEC), and whether there is one: false when the
// variables are unset, malformed or zero, or when $WATCHDOG_PID names
// another process (a child that inherited the environment).
func WatchdogInterval() (time.Duration, bool) {
	usec, err := strconv.ParseUint(os.Getenv("WATCHDOG_USEC"), 10, 63)
	if err != nil || usec == 0 {
		return 0, false
	}
	if p := os.Getenv("WATCHDOG_PID"); p != "" {
		pid, err := strconv.Atoi(p)
		if err != nil || pid != os.Getpid() {
			return 0, false
		}
	}
	if usec > uint64(1<<63-1)/uint64(time.Microsecond) {
		return 0, false
	}
	return time.Duration(usec) * time.Microsecond, true
}

// Run keeps the systemd watchdog fed until ctx ends: every half
// WatchdogInterval, starting at once, it calls healthy and sends WATCHDOG=1
// only if healthy returns true. healthy is called from Run's goroutine
// only, one call at a time; a nil healthy counts as always healthy. A
// check that watches for progress (say, that the write-ahead log's durable
// position moved since the last call) catches a stalled daemon as well as
// a failed one.
//
// Without a watchdog (see WatchdogInterval) or a $NOTIFY_SOCKET, Run
// returns nil at once. Otherwise it returns nil when ctx ends, or an error
// if the socket cannot be reached: systemd would then restart the service
// anyway, and an error says why.
func Run(ctx context.Context, healthy func() bool) error {
	interval, ok := WatchdogInterval()
	if !ok {
		return nil
	}
	addr, ok := socket()
	if !ok {
		return nil
	}
	conn, err := dial(addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	tick := time.NewTicker(interval / 2)
	defer tick.Stop()
	for {
		if healthy == nil || healthy() {
			if err := send(conn, "WATCHDOG=1"); err != nil {
				return err
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// socket returns $NOTIFY_SOCKET as an address, if it is set.
func socket() (*net.UnixAddr, bool) {
	name := os.Getenv("NOTIFY_SOCKET")
	if name == "" {
		return nil, false
	}
	// A leading '@' already means the abstract namespace to the net
	// package, as it does to systemd.
	return &net.UnixAddr{Name: name, Net: "unixgram"}, true
}

func dial(addr *net.UnixAddr) (*net.UnixConn, error) {
	conn, err := net.DialUnix("unixgram", nil, addr)
	if err != nil {
		return nil, fmt.Errorf("sdnotify: %w", err)
	}
	return conn, nil
}

func send(conn *net.UnixConn, state string) error {
	n, err := conn.Write([]byte(state))
	if err != nil {
		return fmt.Errorf("sdnotify: %w", err)
	}
	if n != len(state) {
		return errors.New("sdnotify: short write")
	}
	return nil
}
