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

	"periph.io/x/conn/v3/gpio"

	"github.com/edged-io/edged"
	"github.com/edged-io/edged/sensors"
)

// PulseConfig configures a GPIO pulse counter: flow meters, energy-meter
// S0 outputs, anemometers, rain gauges.
type PulseConfig struct {
	// Name prefixes the series: "<name>/count", "<name>/rate" and, with a
	// scale, "<name>/scaled". Default "pulse".
	Name string `yaml:"name"`
	// Pin is the GPIO by BCM name ("GPIO17") or host alias ("P1_11").
	Pin string `yaml:"pin"`
	// Edge to count: rising (default), falling or both.
	Edge string `yaml:"edge"`
	// Pull: up, down, float, or "" (default: leave the pin as it is).
	// Open-collector and reed-switch outputs need up.
	Pull string `yaml:"pull"`
	// Debounce ignores an edge that follows the previous counted edge
	// within this time (contact bounce). Default 0: count every edge.
	Debounce time.Duration `yaml:"debounce"`
	// Interval between two emissions. Default 10s, at least 100ms.
	Interval time.Duration `yaml:"interval"`
	// Scale, when set, adds a series "<name>/scaled" = rate × scale: with
	// 0.1 L per pulse, scale 0.1 gives L/s and scale 6 gives L/min.
	Scale float64 `yaml:"scale"`
	// Unit of the scaled series (e.g. "L/min").
	Unit string `yaml:"unit"`
	// DeviceClass of the scaled series for Home Assistant. Default:
	// DeviceClass(Unit).
	DeviceClass string `yaml:"device_class"`
	// Series overrides series names, keyed by count, rate or scaled.
	Series map[string]string `yaml:"series"`
}

var edges = map[string]gpio.Edge{"": gpio.RisingEdge, "rising": gpio.RisingEdge, "falling": gpio.FallingEdge, "both": gpio.BothEdges}

var pulls = map[string]gpio.Pull{"": gpio.PullNoChange, "up": gpio.PullUp, "down": gpio.PullDown, "float": gpio.Float, "none": gpio.Float}

// Validate reports every invalid field.
func (c *PulseConfig) Validate() error {
	var errs []error
	add := func(format string, a ...any) { errs = append(errs, fmt.Errorf("pulse: "+format, a...)) }
	if c.Pin == "" {
		add("pin is required, e.g. pin: GPIO17")
	}
	if _, ok := edges[strings.ToLower(c.Edge)]; !ok {
		add("edge %q: want rising, falling or both", c.Edge)
	}
	if _, ok := pulls[strings.ToLower(c.Pull)]; !ok {
		add("pull %q: want up, down or float", c.Pull)
	}
	if c.Debounce < 0 {
		add("debounce %v is negative", c.Debounce)
	}
	if err := checkInterval("pulse", c.Interval, 100*time.Millisecond); err != nil {
		errs = append(errs, err)
	}
	if c.Debounce > 0 && c.Interval > 0 && c.Debounce >= c.Interval {
		add("debounce %v is not below the interval %v", c.Debounce, c.Interval)
	}
	if c.Scale == 0 && (c.Unit != "" || c.DeviceClass != "") {
		add("unit and device_class describe the scaled series: set scale too")
	}
	if c.Name != "" {
		if err := checkSeries(c.Name); err != nil {
			add("name %w", err)
		}
	}
	if err := checkSeriesKeys("pulse", c.Series, "count", "rate", "scaled"); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func (c PulseConfig) withDefaults() PulseConfig {
	if c.Name == "" {
		c.Name = "pulse"
	}
	c.Edge, c.Pull = strings.ToLower(c.Edge), strings.ToLower(c.Pull)
	if c.Interval == 0 {
		c.Interval = 10 * time.Second
	}
	if c.DeviceClass == "" {
		c.DeviceClass = DeviceClass(c.Unit)
	}
	return c
}

// edgeWait bounds how long the counting goroutine waits for an edge before
// it looks at its context again.
const edgeWait = 250 * time.Millisecond

// Pulse counts edges on a GPIO pin. Every interval it appends the number
// of edges in the interval ("pulses"), the rate (Hz, over the measured
// elapsed time) and, with a scale, the scaled rate; when Run stops it
// appends the last, partial interval if it saw any edge, so that no pulse
// is lost on shutdown.
type Pulse struct {
	cfg     PulseConfig
	open    PinOpener
	log     *slog.Logger
	device  string
	stats   counters
	pending atomic.Uint64 // edges since the last emission
}

var _ sensors.Source = (*Pulse)(nil)

// NewPulse validates cfg and returns the counter for device. It touches no
// hardware: Run looks the pin up. open nil means OpenPin; log nil discards.
func NewPulse(cfg PulseConfig, device string, log *slog.Logger, open PinOpener) (*Pulse, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if open == nil {
		open = OpenPin
	}
	log = orDiscard(log).With("sensor", cfg.Name, "driver", "pulse", "pin", cfg.Pin)
	return &Pulse{cfg: cfg, open: open, log: log, device: device}, nil
}

// Stats returns the counter's counters.
func (s *Pulse) Stats() Stats { return s.stats.snapshot() }

// Series lists the count, rate and (with a scale) scaled series.
func (s *Pulse) Series() []SeriesInfo {
	out := []SeriesInfo{
		{seriesName(s.cfg.Series, s.cfg.Name, "count"), "pulses", ""},
		{seriesName(s.cfg.Series, s.cfg.Name, "rate"), "Hz", "frequency"},
	}
	if s.cfg.Scale != 0 {
		out = append(out, SeriesInfo{seriesName(s.cfg.Series, s.cfg.Name, "scaled"), s.cfg.Unit, s.cfg.DeviceClass})
	}
	return out
}

// Run sets the pin up for edge detection and counts until ctx ends. A pin
// that does not exist or refuses edge detection is an error at start.
func (s *Pulse) Run(ctx context.Context, sink sensors.Sink) error {
	pin, err := s.open(s.cfg.Pin)
	if err != nil {
		return fmt.Errorf("pulse %q: %w", s.cfg.Name, err)
	}
	pull := pulls[s.cfg.Pull]
	if err := pin.In(pull, edges[s.cfg.Edge]); err != nil {
		return fmt.Errorf("pulse %q: cannot watch %s for edges (%v): is another program using the pin? %s", s.cfg.Name, s.cfg.Pin, err, gpioHint)
	}
	defer pin.Halt()
	s.log.Info("pulse: counting", "edge", s.cfg.Edge, "pull", pull)

	countCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { s.count(countCtx, pin) })
	defer func() {
		stop()
		wg.Wait()
	}()

	tick := time.NewTicker(s.cfg.Interval)
	defer tick.Stop()
	last := time.Now()
	for {
		select {
		case <-ctx.Done():
			now := time.Now()
			stop()
			wg.Wait() // the counter may still be in WaitForEdge: up to edgeWait
			if n := s.pending.Swap(0); n > 0 {
				return s.emit(sink, n, last, now)
			}
			return nil
		case <-tick.C:
		}
		now := time.Now()
		if err := s.emit(sink, s.pending.Swap(0), last, now); err != nil {
			return err
		}
		last = now
	}
}

// count waits for edges until ctx ends.
func (s *Pulse) count(ctx context.Context, pin gpio.PinIn) {
	var prev time.Time
	for ctx.Err() == nil {
		if !pin.WaitForEdge(edgeWait) {
			continue
		}
		now := time.Now()
		if s.cfg.Debounce > 0 && !prev.IsZero() && now.Sub(prev) < s.cfg.Debounce {
			s.stats.bounces.Add(1)
			continue
		}
		prev = now
		s.stats.edges.Add(1)
		s.pending.Add(1)
	}
}

func (s *Pulse) emit(sink sensors.Sink, n uint64, from, to time.Time) error {
	rs := []edged.Reading{{Series: seriesName(s.cfg.Series, s.cfg.Name, "count"), Unit: "pulses", Value: float64(n)}}
	if d := to.Sub(from); d > 0 { // no rate over an empty interval
		rate := float64(n) / d.Seconds()
		rs = append(rs, edged.Reading{Series: seriesName(s.cfg.Series, s.cfg.Name, "rate"), Unit: "Hz", Value: rate})
		if s.cfg.Scale != 0 {
			rs = append(rs, edged.Reading{Series: seriesName(s.cfg.Series, s.cfg.Name, "scaled"), Unit: s.cfg.Unit, Value: rate * s.cfg.Scale})
		}
	}
	ns := to.UnixNano()
	for i := range rs {
		rs[i].Device, rs[i].Time, rs[i].Ingest, rs[i].Flags = s.device, ns, ns, edged.TimeFromIngest
	}
	if _, err := sink.Append(rs); err != nil {
		return fmt.Errorf("pulse %q: %w", s.cfg.Name, err)
	}
	s.stats.polls.Add(1)
	s.stats.readings.Add(uint64(len(rs)))
	return nil
}
