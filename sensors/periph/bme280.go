package periph

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"periph.io/x/conn/v3/i2c"
	"periph.io/x/conn/v3/physic"
	"periph.io/x/devices/v3/bmxx80"

	"github.com/edged-io/edged"
	"github.com/edged-io/edged/sensors"
)

// BME280Config configures a Bosch BME280 (temperature, pressure, humidity)
// or BMP280 (temperature, pressure) on I²C.
type BME280Config struct {
	// Name prefixes the series: "<name>/temperature", "<name>/pressure",
	// "<name>/humidity". Default "bme280".
	Name string `yaml:"name"`
	// Model is "bme280", "bmp280" or "" (default: whichever answers). A
	// BMP280 where the config says bme280 is an error: it has no humidity
	// sensor, and many boards sold as BME280 carry one.
	Model string `yaml:"model"`
	// Bus is the I²C bus: "1", "/dev/i2c-1" or "I2C1". Default: the first bus.
	Bus string `yaml:"bus"`
	// Address is 0x76 (default, SDO to GND) or 0x77 (SDO to 3V3).
	Address uint16 `yaml:"address"`
	// Interval between two readings. Default 10s, at least 100ms.
	Interval time.Duration `yaml:"interval"`
	// Oversampling per quantity: none, 1x, 2x, 4x, 8x or 16x (default 4x).
	// none turns pressure or humidity off; temperature cannot be off.
	Oversampling BME280Oversampling `yaml:"oversampling"`
	// Filter is the IIR filter coefficient: off (default), 2, 4, 8 or 16.
	// With a filter the chip measures continuously (normal mode, standby
	// up to the interval, at most 1s); without one it measures once per
	// poll (forced mode) and sleeps in between.
	Filter string `yaml:"filter"`
	// Series overrides series names, keyed by quantity (temperature,
	// pressure, humidity).
	Series map[string]string `yaml:"series"`
}

// BME280Oversampling sets the oversampling of each quantity.
type BME280Oversampling struct {
	Temperature string `yaml:"temperature"`
	Pressure    string `yaml:"pressure"`
	Humidity    string `yaml:"humidity"`
}

var oversamplings = map[string]bmxx80.Oversampling{
	"none": bmxx80.Off, "off": bmxx80.Off, "1x": bmxx80.O1x, "2x": bmxx80.O2x,
	"4x": bmxx80.O4x, "8x": bmxx80.O8x, "16x": bmxx80.O16x,
}

var filters = map[string]bmxx80.Filter{
	"off": bmxx80.NoFilter, "none": bmxx80.NoFilter, "0": bmxx80.NoFilter, "1": bmxx80.NoFilter,
	"2": bmxx80.F2, "4": bmxx80.F4, "8": bmxx80.F8, "16": bmxx80.F16,
}

// Validate reports every invalid field.
func (c *BME280Config) Validate() error {
	var errs []error
	add := func(format string, a ...any) { errs = append(errs, fmt.Errorf("bme280: "+format, a...)) }
	switch strings.ToLower(c.Model) {
	case "", "bme280", "bmp280":
	default:
		add("model %q: want bme280 or bmp280 (or leave it out to detect)", c.Model)
	}
	if c.Address != 0 && c.Address != 0x76 && c.Address != 0x77 {
		add("address %#x: a BME280/BMP280 answers at 0x76 (SDO to GND) or 0x77 (SDO to 3V3)", c.Address)
	}
	if err := checkInterval("bme280", c.Interval, 100*time.Millisecond); err != nil {
		errs = append(errs, err)
	}
	for _, o := range []struct{ key, v string }{
		{"temperature", c.Oversampling.Temperature}, {"pressure", c.Oversampling.Pressure}, {"humidity", c.Oversampling.Humidity},
	} {
		v, ok := oversamplings[strings.ToLower(o.v)]
		switch {
		case o.v != "" && !ok:
			add("oversampling.%s %q: want none, 1x, 2x, 4x, 8x or 16x", o.key, o.v)
		case o.v != "" && o.key == "temperature" && v == bmxx80.Off:
			add("oversampling.temperature cannot be none: pressure and humidity are compensated with it")
		}
	}
	if _, ok := filters[strings.ToLower(c.Filter)]; c.Filter != "" && !ok {
		add("filter %q: want off, 2, 4, 8 or 16", c.Filter)
	}
	if c.Name != "" {
		if err := checkSeries(c.Name); err != nil {
			add("name %w", err)
		}
	}
	if err := checkSeriesKeys("bme280", c.Series, "temperature", "pressure", "humidity"); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func (c BME280Config) withDefaults() BME280Config {
	if c.Name == "" {
		c.Name = "bme280"
	}
	c.Model = strings.ToLower(c.Model)
	if c.Address == 0 {
		c.Address = 0x76
	}
	if c.Interval == 0 {
		c.Interval = 10 * time.Second
	}
	return c
}

// opts maps the config onto the bmxx80 driver's options.
func (c *BME280Config) opts() bmxx80.Opts {
	o := bmxx80.DefaultOpts
	if v, ok := oversamplings[strings.ToLower(c.Oversampling.Temperature)]; ok {
		o.Temperature = v
	}
	if v, ok := oversamplings[strings.ToLower(c.Oversampling.Pressure)]; ok {
		o.Pressure = v
	}
	if v, ok := oversamplings[strings.ToLower(c.Oversampling.Humidity)]; ok {
		o.Humidity = v
	}
	if f := filters[strings.ToLower(c.Filter)]; f != bmxx80.NoFilter {
		o.Filter, o.Standby = f, c.Interval
	}
	return o
}

// BME280 reads a BME280 or BMP280 over I²C every interval.
type BME280 struct {
	cfg    BME280Config
	opts   bmxx80.Opts
	open   I2COpener
	log    *slog.Logger
	poller poller
	stats  counters

	mu   sync.Mutex
	chip string // "BME280", "BMP280" or "BMP180" once detected
}

var _ sensors.Source = (*BME280)(nil)

// NewBME280 validates cfg and returns the driver for device. It touches no
// hardware: Run opens the bus. open nil means OpenI2C; log nil discards.
func NewBME280(cfg BME280Config, device string, log *slog.Logger, open I2COpener) (*BME280, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if open == nil {
		open = OpenI2C
	}
	log = orDiscard(log).With("sensor", cfg.Name, "driver", "bme280", "bus", cfg.Bus, "addr", fmt.Sprintf("%#x", cfg.Address))
	s := &BME280{cfg: cfg, opts: cfg.opts(), open: open, log: log}
	s.poller = poller{kind: "bme280", name: cfg.Name, device: device, interval: cfg.Interval, log: log, stats: &s.stats}
	return s, nil
}

// Stats returns the driver's counters.
func (s *BME280) Stats() Stats { return s.stats.snapshot() }

// Series lists the series the driver produces. Before Run has found the
// chip, a config without a model is assumed to be a BME280.
func (s *BME280) Series() []SeriesInfo {
	out := []SeriesInfo{{seriesName(s.cfg.Series, s.cfg.Name, "temperature"), "°C", "temperature"}}
	if s.opts.Pressure != bmxx80.Off {
		out = append(out, SeriesInfo{seriesName(s.cfg.Series, s.cfg.Name, "pressure"), "hPa", "atmospheric_pressure"})
	}
	if s.hasHumidity() {
		out = append(out, SeriesInfo{seriesName(s.cfg.Series, s.cfg.Name, "humidity"), "%", "humidity"})
	}
	return out
}

func (s *BME280) hasHumidity() bool {
	if s.opts.Humidity == bmxx80.Off {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.chip != "" {
		return s.chip == "BME280"
	}
	return s.cfg.Model != "bmp280"
}

// Run opens the bus and sets the chip up, then reads it every interval
// until ctx ends. A bus that cannot be opened or a chip that does not
// answer at start is an error (wrapping ErrNoHardware); later read errors
// are logged, counted and retried with backoff, setting the chip up again.
func (s *BME280) Run(ctx context.Context, sink sensors.Sink) error {
	bus, err := s.open(s.cfg.Bus)
	if err != nil {
		return fmt.Errorf("bme280 %q: %w", s.cfg.Name, err)
	}
	defer bus.Close()
	dev, err := s.setup(bus)
	if err != nil {
		return fmt.Errorf("bme280 %q: %w", s.cfg.Name, err)
	}
	s.log.Info("bme280: sensor found", "chip", s.chipName())
	defer func() {
		if dev != nil {
			dev.Halt()
		}
	}()
	return s.poller.loop(ctx, sink, func() ([]edged.Reading, error) {
		if dev == nil {
			if dev, err = s.setup(bus); err != nil {
				return nil, fmt.Errorf("set the chip up again: %w", err)
			}
			s.stats.reinits.Add(1)
		}
		var e physic.Env
		if err := dev.Sense(&e); err != nil {
			dev = nil // set the chip up again: it may have been power-cycled
			return nil, fmt.Errorf("measure: %w", tidy(err))
		}
		return s.readings(&e), nil
	})
}

// setup detects the chip and writes its configuration.
func (s *BME280) setup(bus i2c.Bus) (*bmxx80.Dev, error) {
	opts := s.opts
	dev, err := bmxx80.NewI2C(bus, s.cfg.Address, &opts)
	if err != nil {
		return nil, &noDeviceError{fmt.Sprintf("no BME280/BMP280 answering at %#x on I²C bus %q (%v); is the sensor wired to address %#x (0x76 with SDO to GND, 0x77 with SDO to 3V3)? check with i2cdetect -y %s",
			s.cfg.Address, s.cfg.Bus, tidy(err), s.cfg.Address, busNumber(s.cfg.Bus)), err}
	}
	chip, _, _ := strings.Cut(dev.String(), "{")
	if s.cfg.Model != "" && !strings.EqualFold(chip, s.cfg.Model) {
		return nil, fmt.Errorf("found a %s at %#x on I²C bus %q but the config says model %s", chip, s.cfg.Address, s.cfg.Bus, s.cfg.Model)
	}
	s.mu.Lock()
	s.chip = chip
	s.mu.Unlock()
	return dev, nil
}

func (s *BME280) chipName() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.chip
}

func (s *BME280) readings(e *physic.Env) []edged.Reading {
	rs := []edged.Reading{{Series: seriesName(s.cfg.Series, s.cfg.Name, "temperature"), Unit: "°C", Value: e.Temperature.Celsius()}}
	if s.opts.Pressure != bmxx80.Off {
		rs = append(rs, edged.Reading{Series: seriesName(s.cfg.Series, s.cfg.Name, "pressure"), Unit: "hPa",
			Value: float64(e.Pressure) / float64(100*physic.Pascal)})
	}
	if s.hasHumidity() {
		rs = append(rs, edged.Reading{Series: seriesName(s.cfg.Series, s.cfg.Name, "humidity"), Unit: "%",
			Value: float64(e.Humidity) / float64(physic.PercentRH)})
	}
	return rs
}

// busNumber guesses the i2cdetect argument for a bus name.
func busNumber(bus string) string {
	n := strings.TrimPrefix(strings.TrimPrefix(bus, "/dev/i2c-"), "I2C")
	if n == "" {
		return "1"
	}
	return n
}
