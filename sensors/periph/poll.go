package periph

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"

	"github.com/edged-io/edged"
	"github.com/edged-io/edged/sensors"
)

// Backoff after a failed poll: the first retry waits MinBackoff, each
// further failure doubles the wait, up to MaxBackoff. A successful poll
// returns to the configured interval.
const (
	MinBackoff = time.Second
	MaxBackoff = 30 * time.Second
)

// ErrNoHardware reports a bus, pin or sensor that is not there when a
// driver starts: I²C or 1-Wire not enabled, a wrong pin name, a sensor that
// does not answer at its address. The daemon logs it and keeps its other
// sources running.
var ErrNoHardware = errors.New("periph: hardware not found")

// Stats counts what a driver did since it was created.
type Stats struct {
	// Polls that appended readings.
	Polls uint64
	// Readings appended.
	Readings uint64
	// Errors: failed polls, plus each DS18B20 sensor that failed a read
	// (a poll in which every sensor failed counts once more).
	Errors uint64
	// Rejected values: read but discarded as implausible (a bad 1-Wire CRC,
	// the DS18B20's 85 °C power-on value, an all-zero scratchpad).
	Rejected uint64
	// Reinits: times a device was set up again after an error.
	Reinits uint64
	// Edges counted by a pulse counter, and Bounces it ignored because
	// they followed the previous edge within the debounce time.
	Edges, Bounces uint64
	// LastError is the most recent error ("" if none yet).
	LastError string
}

type counters struct {
	polls, readings, errors, rejected, reinits, edges, bounces atomic.Uint64

	mu      sync.Mutex
	lastErr string
}

func (c *counters) fail(err error) {
	c.errors.Add(1)
	c.mu.Lock()
	c.lastErr = err.Error()
	c.mu.Unlock()
}

func (c *counters) reject(err error) {
	c.rejected.Add(1)
	c.mu.Lock()
	c.lastErr = err.Error()
	c.mu.Unlock()
}

func (c *counters) snapshot() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return Stats{
		Polls: c.polls.Load(), Readings: c.readings.Load(), Errors: c.errors.Load(),
		Rejected: c.rejected.Load(), Reinits: c.reinits.Load(), Edges: c.edges.Load(),
		Bounces: c.bounces.Load(), LastError: c.lastErr,
	}
}

// backoff is the wait after the n-th consecutive failure (n ≥ 1).
func backoff(n int) time.Duration {
	d := MinBackoff
	for i := 1; i < n && d < MaxBackoff; i++ {
		d *= 2
	}
	return min(d, MaxBackoff)
}

// poller runs the poll loop every driver but the pulse counter shares.
type poller struct {
	kind, name, device string
	interval           time.Duration
	log                *slog.Logger
	stats              *counters
}

// loop calls poll at once and then every interval until ctx ends. poll
// returns the readings of one poll (Series, Unit and Value set) and an
// error if the poll failed as a whole; readings returned with an error are
// still appended. After a failure loop waits with exponential backoff and
// tries again: only a Sink error ends it early.
func (p *poller) loop(ctx context.Context, sink sensors.Sink, poll func() ([]edged.Reading, error)) error {
	timer := time.NewTimer(0)
	defer timer.Stop()
	failures := 0
	next := time.Now()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		}
		rs, err := poll()
		now := time.Now()
		if len(rs) > 0 {
			if aerr := p.append(sink, rs, now); aerr != nil {
				return aerr
			}
		}
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			failures++
			p.stats.fail(err)
			wait := backoff(failures)
			p.log.Warn(p.kind+": read failed, retrying", "err", err, "failures", failures, "retry_in", wait)
			next = now.Add(wait)
		} else {
			if failures > 0 {
				p.log.Info(p.kind+": reading again", "after_failures", failures)
			}
			failures = 0
			if next = next.Add(p.interval); next.Before(now) {
				next = now // the poll took longer than the interval: skip, don't burst
			}
		}
		timer.Reset(time.Until(next))
	}
}

// append stamps readings with the device and the ingest clock and appends
// them as one record.
func (p *poller) append(sink sensors.Sink, rs []edged.Reading, now time.Time) error {
	ns := now.UnixNano()
	for i := range rs {
		rs[i].Device, rs[i].Time, rs[i].Ingest, rs[i].Flags = p.device, ns, ns, edged.TimeFromIngest
	}
	if _, err := sink.Append(rs); err != nil {
		return fmt.Errorf("%s %q: %w", p.kind, p.name, err)
	}
	p.stats.polls.Add(1)
	p.stats.readings.Add(uint64(len(rs)))
	return nil
}

func orDiscard(log *slog.Logger) *slog.Logger {
	if log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return log
}

// checkSeries reports a series name that cannot become an MQTT topic level
// path or a log field: empty, too long, with blanks, MQTT wildcards, or
// empty levels.
func checkSeries(s string) error {
	switch {
	case s == "":
		return errors.New("is empty")
	case len(s) > edged.MaxStringLen:
		return fmt.Errorf("is longer than %d bytes", edged.MaxStringLen)
	case strings.ContainsAny(s, "+#"):
		return fmt.Errorf("%q contains an MQTT wildcard (+ or #)", s)
	case strings.IndexFunc(s, unicode.IsSpace) >= 0:
		return fmt.Errorf("%q contains blanks", s)
	case strings.HasPrefix(s, "/") || strings.HasSuffix(s, "/") || strings.Contains(s, "//"):
		return fmt.Errorf("%q has an empty level (leading, trailing or double /)", s)
	}
	return nil
}

// checkInterval reports an interval below floor (zero means the default).
func checkInterval(kind string, d, floor time.Duration) error {
	if d < 0 || (d > 0 && d < floor) {
		return fmt.Errorf("%s: interval %v is below %v", kind, d, floor)
	}
	return nil
}

// checkSeriesKeys reports series overrides for unknown quantities and
// invalid names.
func checkSeriesKeys(kind string, m map[string]string, keys ...string) error {
	var errs []error
	for k, v := range m {
		if !contains(keys, k) {
			errs = append(errs, fmt.Errorf("%s: series.%s: unknown quantity (want %s)", kind, k, strings.Join(keys, ", ")))
			continue
		}
		if err := checkSeries(v); err != nil {
			errs = append(errs, fmt.Errorf("%s: series.%s %w", kind, k, err))
		}
	}
	return errors.Join(errs...)
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// seriesName is the override for quantity q, else "<name>/<q>".
func seriesName(m map[string]string, name, q string) string {
	if s := m[q]; s != "" {
		return s
	}
	return name + "/" + q
}

// noDeviceError reports a device that does not answer: at start it means
// ErrNoHardware; while running it is one more read error to retry.
type noDeviceError struct {
	msg string
	err error
}

func (e *noDeviceError) Error() string   { return e.msg }
func (e *noDeviceError) Unwrap() []error { return []error{ErrNoHardware, e.err} }

// tidy cleans up the messages of periph's device drivers, which prefix the
// chip name before they know it (": …") and sometimes twice ("bme280:
// bme280: …").
func tidy(err error) error {
	msg := strings.TrimPrefix(err.Error(), ": ")
	if p, rest, ok := strings.Cut(msg, ": "); ok && strings.HasPrefix(rest, p+": ") {
		msg = rest
	}
	if msg == err.Error() {
		return err
	}
	return &tidyError{msg, err}
}

type tidyError struct {
	msg string
	err error
}

func (e *tidyError) Error() string { return e.msg }
func (e *tidyError) Unwrap() error { return e.err }
