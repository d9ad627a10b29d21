package periph

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/i2c"

	"github.com/edged-io/edged"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// sink collects what a source appends.
type sink struct {
	mu      sync.Mutex
	batches [][]edged.Reading
	err     error
}

func (s *sink) Append(rs []edged.Reading) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return 0, s.err
	}
	s.batches = append(s.batches, slices.Clone(rs))
	return uint64(len(s.batches)), nil
}

func (s *sink) WaitDurable(context.Context, uint64) error { return nil }

func (s *sink) all() [][]edged.Reading {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.batches)
}

// logBuf captures a logger's text output.
type logBuf struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func newLog() (*slog.Logger, *logBuf) {
	b := &logBuf{}
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug})), b
}

// runFor runs src for d of (fake) time, then cancels it and returns Run's
// result. It must be called inside a synctest bubble.
func runFor(t *testing.T, d time.Duration, run func(context.Context) error) error {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- run(ctx) }()
	time.Sleep(d)
	cancel()
	return <-done
}

// Errors a Linux I²C adapter returns: a NACK (no device acknowledged the
// address) and a bus timeout (a slave holding SCL low).
var (
	errNACK    = &busErr{"sysfs-i2c: remote I/O error", syscall.EREMOTEIO}
	errTimeout = &busErr{"sysfs-i2c: connection timed out", syscall.ETIMEDOUT}
)

type busErr struct {
	msg string
	no  syscall.Errno
}

func (e *busErr) Error() string { return e.msg }
func (e *busErr) Unwrap() error { return e.no }

// faultBus fails chosen transactions of an I²C bus (counted from 0 over
// every Tx, failed ones included) without passing them on, as a NACK or a
// timeout would.
type faultBus struct {
	i2c.Bus
	mu     sync.Mutex
	n      int
	faults map[int]error
	closed bool
}

func (b *faultBus) Tx(addr uint16, w, r []byte) error {
	b.mu.Lock()
	err := b.faults[b.n]
	b.n++
	b.mu.Unlock()
	if err != nil {
		return err
	}
	return b.Bus.Tx(addr, w, r)
}

func (b *faultBus) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	return nil
}

func (b *faultBus) opener() I2COpener {
	return func(string) (i2c.BusCloser, error) { return b, nil }
}

// edgePin is an input pin whose edges the test sends on a channel, like
// periph's gpiotest.Pin; it waits on the time package so that synctest's
// fake clock drives its timeouts.
type edgePin struct {
	gpio.PinIO // gpio.INVALID: everything but input fails
	edges      chan gpio.Level

	mu     sync.Mutex
	pull   gpio.Pull
	edge   gpio.Edge
	inErr  error
	halted bool
}

func newEdgePin() *edgePin { return &edgePin{PinIO: gpio.INVALID, edges: make(chan gpio.Level)} }

func (p *edgePin) String() string { return "GPIO17" }
func (p *edgePin) Name() string   { return "GPIO17" }

func (p *edgePin) In(pull gpio.Pull, edge gpio.Edge) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pull, p.edge = pull, edge
	return p.inErr
}

func (p *edgePin) WaitForEdge(timeout time.Duration) bool {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-p.edges:
		return true
	case <-t.C:
		return false
	}
}

func (p *edgePin) Halt() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.halted = true
	return nil
}

func values(batch []edged.Reading) map[string]float64 {
	m := map[string]float64{}
	for _, r := range batch {
		m[r.Series] = r.Value
	}
	return m
}

func checkStamped(t *testing.T, batches [][]edged.Reading, device string) {
	t.Helper()
	for _, b := range batches {
		for _, r := range b {
			if r.Device != device || r.Time == 0 || r.Ingest != r.Time || r.Flags != edged.TimeFromIngest {
				t.Errorf("reading not stamped: %+v", r)
			}
		}
	}
}

func TestBackoff(t *testing.T) {
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, 30 * time.Second, 30 * time.Second}
	for i, w := range want {
		if got := backoff(i + 1); got != w {
			t.Errorf("backoff(%d) = %v, want %v", i+1, got, w)
		}
	}
	if backoff(1000) != MaxBackoff {
		t.Error("backoff is not capped")
	}
}

func TestDeviceClass(t *testing.T) {
	for unit, want := range map[string]string{"°C": "temperature", "hPa": "pressure", "V": "voltage", "Hz": "frequency",
		"L/min": "volume_flow_rate", "%": "", "pulses": "", "L/s": ""} {
		if got := DeviceClass(unit); got != want {
			t.Errorf("DeviceClass(%q) = %q, want %q", unit, got, want)
		}
	}
}

func TestErrNoHardwareIsDistinct(t *testing.T) {
	if errors.Is(errNACK, ErrNoHardware) {
		t.Fatal("a NACK must not read as missing hardware")
	}
}
