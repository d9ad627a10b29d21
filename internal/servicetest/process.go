package servicetest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

const (
	// stopGrace is how long Stop waits after SIGTERM before sending SIGKILL.
	stopGrace = 10 * time.Second
	// logTailLines is how many lines of a service's log are printed when the
	// test fails.
	logTailLines = 50
	// setupHint is appended to "binary not found" failures.
	setupHint = "run `make setup` (scripts/setup-test-env.sh) to install the test services"
)

// errExited reports that a service process exited while we were waiting for
// it to become ready.
var errExited = errors.New("exited during startup")

// process is one running instance of a service binary.
type process struct {
	name string
	cmd  *exec.Cmd
	done chan struct{} // closed once cmd.Wait has returned
	err  error         // cmd.Wait's result; valid after done is closed
}

// startProcess starts bin with args, appending its stdout and stderr to
// logPath.
func startProcess(name, bin string, args []string, env []string, dir, logPath string) (*process, error) {
	f, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	// The child gets its own copy of the descriptor; ours is not needed
	// once it has started.
	defer f.Close()
	fmt.Fprintf(f, "--- servicetest: %s %s ---\n", bin, strings.Join(args, " "))

	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = env
	cmd.Stdin = nil // /dev/null
	cmd.Stdout = f  // an *os.File: passed to the child directly, no copying goroutine
	cmd.Stderr = f
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait() // always reap: no zombies
		close(p.done)
	}()
	return p, nil
}

func (p *process) pid() int { return p.cmd.Process.Pid }

// exited reports whether the process has exited (and been reaped).
func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// exitError describes how the process ended; only valid once exited.
func (p *process) exitError() error {
	if p.err == nil {
		return fmt.Errorf("%s (pid %d) %w with status 0", p.name, p.pid(), errExited)
	}
	return fmt.Errorf("%s (pid %d) %w: %v", p.name, p.pid(), errExited, p.err)
}

// signal sends sig to the process's group (it leads its own group).
func (p *process) signal(sig syscall.Signal) {
	if p.exited() {
		return // the pid (and group id) may already be reused
	}
	if err := syscall.Kill(-p.pid(), sig); err != nil {
		_ = p.cmd.Process.Signal(sig)
	}
}

// stop sends SIGTERM, waits up to grace for the process to exit, then sends
// SIGKILL; it returns once the process has been reaped.
func (p *process) stop(grace time.Duration) {
	p.signal(syscall.SIGTERM)
	timer := time.NewTimer(grace)
	defer timer.Stop()
	select {
	case <-p.done:
	case <-timer.C:
		p.kill()
	}
}

// kill sends SIGKILL and returns once the process has been reaped.
func (p *process) kill() {
	p.signal(syscall.SIGKILL)
	<-p.done
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago. There
// is an unavoidable race with other processes picking the same port; the
// Start functions retry once on a different port when a service fails to
// start. Tests can use it for extra listeners in MosquittoOptions.ExtraConfig.
func FreePort(t testing.TB) int {
	t.Helper()
	port, err := freePort()
	if err != nil {
		t.Fatalf("servicetest: finding a free port: %v", err)
	}
	return port
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// logTail returns the last n lines of the file at path (reading at most its
// last 64 KiB).
func logTail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Sprintf("(cannot read log: %v)", err)
	}
	defer f.Close()
	const max = 64 << 10
	if fi, err := f.Stat(); err == nil && fi.Size() > max {
		_, _ = f.Seek(-max, io.SeekEnd)
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return fmt.Sprintf("(cannot read log: %v)", err)
	}
	b = bytes.TrimRight(b, "\n")
	lines := bytes.Split(b, []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

// logTailOnFailure registers a cleanup that prints the tail of the log at
// path if the test has failed. Register it before the cleanup that stops the
// service, so that it runs after it (cleanups run last-in first-out) and the
// log includes the shutdown.
func logTailOnFailure(t testing.TB, name, path string) {
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("servicetest: last %d lines of %s log %s:\n%s", logTailLines, name, path, logTail(path, logTailLines))
		}
	})
}

// executable reports whether path is an existing, executable regular file.
func executable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

// findBinary returns the binary named by the environment variable envVar
// when it is set (failing the test if it is not executable), else the first
// executable candidate; a candidate without a slash is looked up in PATH.
func findBinary(t testing.TB, name, envVar string, candidates ...string) string {
	t.Helper()
	if p := os.Getenv(envVar); p != "" {
		if !executable(p) {
			t.Fatalf("servicetest: %s=%q is not an executable file (fix or unset it); %s", envVar, p, setupHint)
		}
		return p
	}
	var tried []string
	for _, c := range candidates {
		if c == "" {
			continue
		}
		if !strings.ContainsRune(c, filepath.Separator) {
			if p, err := exec.LookPath(c); err == nil {
				return p
			}
			tried = append(tried, c+" in $PATH")
			continue
		}
		if executable(c) {
			return c
		}
		tried = append(tried, c)
	}
	t.Fatalf("servicetest: %s binary not found (looked at $%s, %s); %s", name, envVar, strings.Join(tried, ", "), setupHint)
	return ""
}
