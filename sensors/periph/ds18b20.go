package periph

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"periph.io/x/devices/v3/ds18b20"

	"github.com/edged-io/edged"
	"github.com/edged-io/edged/sensors"
)

// DS18B20Config configures DS18B20 (and DS18S20, DS1822) 1-Wire
// thermometers.
type DS18B20Config struct {
	// Name prefixes the series: "<name>/<id>". Default "ds18b20".
	Name string `yaml:"name"`
	// Backend is "sysfs" (default): the kernel's w1-gpio and w1_therm
	// drivers, as set up by dtoverlay=w1-gpio on a Raspberry Pi; or
	// "onewire": a periph.io 1-Wire bus (kernel w1 netlink), driven by
	// edged itself.
	Backend string `yaml:"backend"`
	// SysfsRoot is where the sysfs backend finds the sensors. Default
	// /sys/bus/w1/devices.
	SysfsRoot string `yaml:"sysfs_root"`
	// Bus names the 1-Wire bus of the onewire backend. Default: the first.
	Bus string `yaml:"bus"`
	// IDs lists the sensors to read, as the kernel names them
	// ("28-0316a2795aff"), or ["all"] (the default, also when empty):
	// every thermometer on the bus, looked for again at each poll.
	IDs []string `yaml:"ids"`
	// Resolution in bits, 9 (0.5 °C, 94 ms) to 12 (0.0625 °C, 750 ms).
	// Default: leave the sensors as they are (sysfs; writing it needs
	// root and kernel 5.10+), 12 (onewire).
	Resolution int `yaml:"resolution"`
	// Interval between two readings. Default 30s, at least 1s.
	Interval time.Duration `yaml:"interval"`
	// Series overrides series names, keyed by sensor ID.
	Series map[string]string `yaml:"series"`
}

// Validate reports every invalid field.
func (c *DS18B20Config) Validate() error {
	var errs []error
	add := func(format string, a ...any) { errs = append(errs, fmt.Errorf("ds18b20: "+format, a...)) }
	switch c.Backend {
	case "", "sysfs", "onewire":
	default:
		add("backend %q: want sysfs or onewire", c.Backend)
	}
	if c.Backend != "onewire" && c.Bus != "" {
		add("bus %q is only used with backend: onewire", c.Bus)
	}
	if c.Resolution != 0 && (c.Resolution < 9 || c.Resolution > 12) {
		add("resolution %d: want 9 to 12 bits", c.Resolution)
	}
	if err := checkInterval("ds18b20", c.Interval, time.Second); err != nil {
		errs = append(errs, err)
	}
	if c.all() && len(c.IDs) > 1 {
		add("ids: \"all\" cannot be combined with sensor IDs")
	}
	for i, id := range c.IDs {
		if id == "all" {
			continue
		}
		if _, err := idAddress(id); err != nil {
			add("ids[%d]: %w", i, err)
		}
	}
	if c.Name != "" {
		if err := checkSeries(c.Name); err != nil {
			add("name %w", err)
		}
	}
	for id, s := range c.Series {
		if _, err := idAddress(id); err != nil {
			add("series: key %w", err)
		} else if err := checkSeries(s); err != nil {
			add("series.%s %w", id, err)
		}
	}
	return errors.Join(errs...)
}

func (c *DS18B20Config) all() bool { return len(c.IDs) == 0 || slices.Contains(c.IDs, "all") }

func (c DS18B20Config) withDefaults() DS18B20Config {
	if c.Name == "" {
		c.Name = "ds18b20"
	}
	if c.Backend == "" {
		c.Backend = "sysfs"
	}
	if c.SysfsRoot == "" {
		c.SysfsRoot = "/sys/bus/w1/devices"
	}
	if c.Interval == 0 {
		c.Interval = 30 * time.Second
	}
	if c.all() {
		c.IDs = nil
	}
	ids := make([]string, len(c.IDs))
	for i, id := range c.IDs {
		ids[i] = normalizeID(id)
	}
	series := map[string]string{}
	for id, v := range c.Series {
		series[normalizeID(id)] = v
	}
	c.IDs, c.Series = ids, series
	return c
}

// DS18B20 reads 1-Wire thermometers every interval, all in one record.
// A sensor that fails or returns an implausible value is left out of that
// poll, counted and logged when its state changes; a poll in which no
// sensor gave a value counts as failed and is retried with backoff.
type DS18B20 struct {
	cfg    DS18B20Config
	open   OneWireOpener
	log    *slog.Logger
	poller poller
	stats  counters

	mu    sync.Mutex
	ids   []string        // sensors read by the last poll
	state map[string]bool // false: the sensor's last read failed
}

var _ sensors.Source = (*DS18B20)(nil)

// NewDS18B20 validates cfg and returns the driver for device. open is used
// by the onewire backend only (nil: OpenOneWire); log nil discards.
func NewDS18B20(cfg DS18B20Config, device string, log *slog.Logger, open OneWireOpener) (*DS18B20, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if open == nil {
		open = OpenOneWire
	}
	attrs := []any{"sensor", cfg.Name, "driver", "ds18b20", "backend", cfg.Backend}
	if cfg.Backend == "sysfs" {
		attrs = append(attrs, "root", cfg.SysfsRoot)
	} else {
		attrs = append(attrs, "bus", cfg.Bus)
	}
	log = orDiscard(log).With(attrs...)
	s := &DS18B20{cfg: cfg, open: open, log: log, ids: cfg.IDs, state: map[string]bool{}}
	s.poller = poller{kind: "ds18b20", name: cfg.Name, device: device, interval: cfg.Interval, log: log, stats: &s.stats}
	return s, nil
}

// Stats returns the driver's counters.
func (s *DS18B20) Stats() Stats { return s.stats.snapshot() }

// Series lists the series of the configured sensors or, with "all", of
// those the last poll found (none before Run).
func (s *DS18B20) Series() []SeriesInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []SeriesInfo
	for _, id := range s.ids {
		out = append(out, SeriesInfo{s.series(id), "°C", "temperature"})
	}
	return out
}

func (s *DS18B20) series(id string) string {
	if v := s.cfg.Series[id]; v != "" {
		return v
	}
	return s.cfg.Name + "/" + id
}

// Run finds the sensors, then reads them every interval until ctx ends. A
// missing bus, a configured sensor that is not there, or no sensor at all
// is an error at start (wrapping ErrNoHardware).
func (s *DS18B20) Run(ctx context.Context, sink sensors.Sink) error {
	b, err := s.backend()
	if err != nil {
		return fmt.Errorf("ds18b20 %q: %w", s.cfg.Name, err)
	}
	defer b.close()
	var found []string
	var probeErr error
	if bw, ok := b.(*busW1); ok && !s.cfg.all() {
		found, probeErr = bw.probe(s.cfg.IDs) // the bus may not support search
	} else if found, err = b.discover(); err != nil {
		if !errors.Is(err, ErrNoHardware) {
			err = fmt.Errorf("%w: %w", ErrNoHardware, err)
		}
		return fmt.Errorf("ds18b20 %q: %w", s.cfg.Name, err)
	}
	if err := s.checkPresent(found, probeErr); err != nil {
		return fmt.Errorf("ds18b20 %q: %w", s.cfg.Name, err)
	}
	s.mu.Lock()
	s.ids = s.want(found)
	s.mu.Unlock()
	if sb, ok := b.(*sysfsW1); ok && s.cfg.Resolution != 0 {
		for _, id := range s.want(found) {
			if err := sb.setResolution(id, s.cfg.Resolution); err != nil {
				s.log.Warn("ds18b20: cannot set resolution (needs root and kernel 5.10+); keeping the sensor's", "id", id, "err", err)
			}
		}
	}
	s.log.Info("ds18b20: sensors found", "ids", strings.Join(s.want(found), ","))
	return s.poller.loop(ctx, sink, func() ([]edged.Reading, error) { return s.poll(b) })
}

func (s *DS18B20) backend() (w1Backend, error) {
	if s.cfg.Backend == "sysfs" {
		return &sysfsW1{root: s.cfg.SysfsRoot}, nil
	}
	bus, err := s.open(s.cfg.Bus)
	if err != nil {
		return nil, err
	}
	res := s.cfg.Resolution
	if res == 0 {
		res = 12
	}
	return &busW1{bus: bus, resolution: res, devs: map[string]*ds18b20.Dev{}}, nil
}

func (s *DS18B20) checkPresent(found []string, probeErr error) error {
	where := s.cfg.SysfsRoot
	if s.cfg.Backend == "onewire" {
		where = fmt.Sprintf("1-Wire bus %q", s.cfg.Bus)
	}
	if s.cfg.all() && len(found) == 0 {
		return fmt.Errorf("%w: no DS18B20 found under %s: check the wiring (data on GPIO4 by default) and the 4.7 kΩ pull-up to 3V3", ErrNoHardware, where)
	}
	var missing []string
	for _, id := range s.cfg.IDs {
		if !slices.Contains(found, id) {
			missing = append(missing, id)
		}
	}
	if len(missing) > 0 {
		detail := fmt.Sprintf("found: %s", strings.Join(found, ", "))
		if probeErr != nil {
			detail = probeErr.Error()
		}
		return fmt.Errorf("%w: sensor %s not found under %s (%s)", ErrNoHardware, strings.Join(missing, ", "), where, detail)
	}
	return nil
}

// want is the list of sensors to read given those found.
func (s *DS18B20) want(found []string) []string {
	if s.cfg.all() {
		return found
	}
	return s.cfg.IDs
}

func (s *DS18B20) poll(b w1Backend) ([]edged.Reading, error) {
	ids := s.cfg.IDs
	if s.cfg.all() {
		found, err := b.discover()
		if err != nil {
			return nil, err
		}
		ids = found
		s.mu.Lock()
		if !slices.Equal(ids, s.ids) {
			s.log.Info("ds18b20: sensors changed", "ids", strings.Join(ids, ","))
		}
		s.ids = ids
		s.mu.Unlock()
	}
	temps, errs, err := b.read(ids)
	if err != nil {
		return nil, err
	}
	var rs []edged.Reading
	var failed []string
	for i, id := range ids {
		if errs[i] != nil {
			s.sensorFailed(id, errs[i])
			failed = append(failed, id)
			continue
		}
		s.sensorOK(id)
		rs = append(rs, edged.Reading{Series: s.series(id), Unit: "°C", Value: temps[i]})
	}
	if len(rs) == 0 && len(ids) > 0 {
		return nil, fmt.Errorf("no sensor gave a valid reading (%s)", strings.Join(failed, ", "))
	}
	return rs, nil
}

// sensorFailed counts a failed sensor and logs it when it was fine before.
func (s *DS18B20) sensorFailed(id string, err error) {
	var rej *rejectError
	kind := "failed"
	if errors.As(err, &rej) {
		s.stats.reject(err)
		kind = "rejected"
	} else {
		s.stats.fail(err)
	}
	s.mu.Lock()
	ok, seen := s.state[id]
	s.state[id] = false
	s.mu.Unlock()
	if ok || !seen {
		s.log.Warn("ds18b20: reading "+kind+", skipping the sensor until it recovers", "id", id, "err", err)
	} else {
		s.log.Debug("ds18b20: reading "+kind, "id", id, "err", err)
	}
}

func (s *DS18B20) sensorOK(id string) {
	s.mu.Lock()
	ok, seen := s.state[id]
	s.state[id] = true
	s.mu.Unlock()
	if seen && !ok {
		s.log.Info("ds18b20: sensor reading again", "id", id)
	}
}
