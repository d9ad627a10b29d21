package periph

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"
	"time"

	"periph.io/x/conn/v3/i2c"
	"periph.io/x/conn/v3/physic"
	"periph.io/x/devices/v3/ads1x15"

	"github.com/edged-io/edged"
	"github.com/edged-io/edged/sensors"
)

// ADS1x15Config configures a TI ADS1115 (16-bit) or ADS1015 (12-bit)
// analog-to-digital converter on I²C.
type ADS1x15Config struct {
	// Name prefixes the default series names: "<name>/ch<input>". Default "adc".
	Name string `yaml:"name"`
	// Chip is "ads1115" (default) or "ads1015".
	Chip string `yaml:"chip"`
	// Bus is the I²C bus: "1", "/dev/i2c-1" or "I2C1". Default: the first bus.
	Bus string `yaml:"bus"`
	// Address is 0x48 (default, ADDR to GND), 0x49, 0x4a or 0x4b.
	Address uint16 `yaml:"address"`
	// DataRate in samples per second; slower is less noisy. ADS1115: 8,
	// 16, 32, 64, 128 (default), 250, 475, 860. ADS1015: 128, 250, 490,
	// 920, 1600 (default), 2400, 3300.
	DataRate int `yaml:"data_rate"`
	// Interval between two readings of all channels. Default 10s, at least 100ms.
	Interval time.Duration `yaml:"interval"`
	// Channels to read, at least one.
	Channels []ADCChannel `yaml:"channels"`
}

// ADCChannel is one input of the converter.
type ADCChannel struct {
	// Input is "0" to "3" (against GND) or "0-1", "0-3", "1-3", "2-3"
	// (differential).
	Input string `yaml:"input"`
	// Gain of the amplifier: "2/3", "1", "2", "4", "8" or "16"; or give
	// Range instead. Default gain 1 (±4.096 V).
	Gain string `yaml:"gain"`
	// Range is the full-scale voltage: 6.144, 4.096, 2.048, 1.024, 0.512
	// or 0.256 (V). Inputs never go beyond the supply voltage, whatever
	// the range.
	Range float64 `yaml:"range"`
	// Scale and Offset turn volts into the value: value = V × scale +
	// offset. Default scale 1, offset 0.
	Scale  float64 `yaml:"scale"`
	Offset float64 `yaml:"offset"`
	// Unit of the value. Default "V" when neither scale nor offset is set.
	Unit string `yaml:"unit"`
	// Series name. Default "<name>/ch<input>".
	Series string `yaml:"series"`
	// DeviceClass for Home Assistant. Default: DeviceClass(Unit).
	DeviceClass string `yaml:"device_class"`
}

var adcInputs = map[string]ads1x15.Channel{
	"0": ads1x15.Channel0, "1": ads1x15.Channel1, "2": ads1x15.Channel2, "3": ads1x15.Channel3,
	"0-1": ads1x15.Channel0Minus1, "0-3": ads1x15.Channel0Minus3, "1-3": ads1x15.Channel1Minus3, "2-3": ads1x15.Channel2Minus3,
}

// adcRanges maps gains to full-scale millivolts.
var adcRanges = map[string]int64{"2/3": 6144, "1": 4096, "2": 2048, "4": 1024, "8": 512, "16": 256}

var adcRates = map[string][]int{
	"ads1115": {8, 16, 32, 64, 128, 250, 475, 860},
	"ads1015": {128, 250, 490, 920, 1600, 2400, 3300},
}

// Validate reports every invalid field.
func (c *ADS1x15Config) Validate() error {
	var errs []error
	add := func(format string, a ...any) { errs = append(errs, fmt.Errorf("ads1x15: "+format, a...)) }
	chip := strings.ToLower(c.Chip)
	if chip == "" {
		chip = "ads1115"
	}
	rates, ok := adcRates[chip]
	if !ok {
		add("chip %q: want ads1115 or ads1015", c.Chip)
	}
	if c.Address != 0 && (c.Address < 0x48 || c.Address > 0x4b) {
		add("address %#x: an ADS1x15 answers at 0x48 to 0x4b (ADDR to GND, VDD, SDA or SCL)", c.Address)
	}
	if ok && c.DataRate != 0 && !slices.Contains(rates, c.DataRate) {
		add("data_rate %d: the %s supports %v samples/s", c.DataRate, chip, rates)
	}
	if err := checkInterval("ads1x15", c.Interval, 100*time.Millisecond); err != nil {
		errs = append(errs, err)
	}
	if c.Name != "" {
		if err := checkSeries(c.Name); err != nil {
			add("name %w", err)
		}
	}
	if len(c.Channels) == 0 {
		add("channels: none configured; add at least one, e.g. {input: \"0\"}")
	}
	series := map[string]int{}
	for i, ch := range c.Channels {
		if _, ok := adcInputs[ch.Input]; !ok {
			add("channels[%d].input %q: want 0, 1, 2, 3, 0-1, 0-3, 1-3 or 2-3", i, ch.Input)
		}
		if ch.Gain != "" && ch.Range != 0 {
			add("channels[%d]: set gain or range, not both", i)
		}
		if _, ok := adcRanges[ch.Gain]; ch.Gain != "" && !ok {
			add("channels[%d].gain %q: want 2/3, 1, 2, 4, 8 or 16", i, ch.Gain)
		}
		if ch.Range != 0 && !validRange(ch.Range) {
			add("channels[%d].range %v: want 6.144, 4.096, 2.048, 1.024, 0.512 or 0.256 (V)", i, ch.Range)
		}
		s := ch.Series
		if s == "" {
			s = c.withDefaults().Name + "/ch" + ch.Input
		}
		if err := checkSeries(s); err != nil {
			add("channels[%d].series %w", i, err)
		} else if j, dup := series[s]; dup {
			add("channels[%d].series %q is also channels[%d]'s", i, s, j)
		}
		series[s] = i
	}
	return errors.Join(errs...)
}

// validRange reports whether v volts is one of the converter's ranges.
func validRange(v float64) bool {
	for _, mv := range adcRanges {
		if math.Round(v*1000) == float64(mv) {
			return true
		}
	}
	return false
}

func (c ADS1x15Config) withDefaults() ADS1x15Config {
	if c.Name == "" {
		c.Name = "adc"
	}
	c.Chip = strings.ToLower(c.Chip)
	if c.Chip == "" {
		c.Chip = "ads1115"
	}
	if c.Address == 0 {
		c.Address = ads1x15.I2CAddr
	}
	if c.DataRate == 0 {
		c.DataRate = map[string]int{"ads1115": 128, "ads1015": 1600}[c.Chip]
	}
	if c.Interval == 0 {
		c.Interval = 10 * time.Second
	}
	chs := slices.Clone(c.Channels)
	for i := range chs {
		ch := &chs[i]
		if ch.Range == 0 {
			ch.Range = float64(adcRanges[cmpOr(ch.Gain, "1")]) / 1000
		}
		if ch.Unit == "" && ch.Scale == 0 && ch.Offset == 0 {
			ch.Unit = "V"
		}
		if ch.Scale == 0 {
			ch.Scale = 1
		}
		if ch.Series == "" {
			ch.Series = c.Name + "/ch" + ch.Input
		}
		if ch.DeviceClass == "" {
			ch.DeviceClass = DeviceClass(ch.Unit)
		}
	}
	c.Channels = chs
	return c
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// ADS1x15 reads the channels of an ADS1115/ADS1015 every interval, all in
// one record.
type ADS1x15 struct {
	cfg    ADS1x15Config
	open   I2COpener
	log    *slog.Logger
	poller poller
	stats  counters
}

var _ sensors.Source = (*ADS1x15)(nil)

// NewADS1x15 validates cfg and returns the driver for device. It touches
// no hardware: Run opens the bus. open nil means OpenI2C; log nil discards.
func NewADS1x15(cfg ADS1x15Config, device string, log *slog.Logger, open I2COpener) (*ADS1x15, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if open == nil {
		open = OpenI2C
	}
	log = orDiscard(log).With("sensor", cfg.Name, "driver", cfg.Chip, "bus", cfg.Bus, "addr", fmt.Sprintf("%#x", cfg.Address))
	s := &ADS1x15{cfg: cfg, open: open, log: log}
	s.poller = poller{kind: cfg.Chip, name: cfg.Name, device: device, interval: cfg.Interval, log: log, stats: &s.stats}
	return s, nil
}

// Stats returns the driver's counters.
func (s *ADS1x15) Stats() Stats { return s.stats.snapshot() }

// Series lists one series per channel.
func (s *ADS1x15) Series() []SeriesInfo {
	var out []SeriesInfo
	for _, ch := range s.cfg.Channels {
		out = append(out, SeriesInfo{ch.Series, ch.Unit, ch.DeviceClass})
	}
	return out
}

// Run opens the bus and checks that the converter answers, then reads
// every channel each interval until ctx ends. A missing bus or converter
// is an error at start (wrapping ErrNoHardware); later read errors are
// logged, counted and retried with backoff.
func (s *ADS1x15) Run(ctx context.Context, sink sensors.Sink) error {
	bus, err := s.open(s.cfg.Bus)
	if err != nil {
		return fmt.Errorf("%s %q: %w", s.cfg.Chip, s.cfg.Name, err)
	}
	defer bus.Close()
	// Reading the config register is a probe that starts no conversion
	// (it holds 0x8583 after power-up).
	var reg [2]byte
	if err := (&i2c.Dev{Bus: bus, Addr: s.cfg.Address}).Tx([]byte{0x01}, reg[:]); err != nil {
		return fmt.Errorf("%s %q: %w: no converter answering at %#x on I²C bus %q (%v); is it wired to address %#x (ADDR to GND 0x48, VDD 0x49, SDA 0x4a, SCL 0x4b)? check with i2cdetect -y %s",
			s.cfg.Chip, s.cfg.Name, ErrNoHardware, s.cfg.Address, s.cfg.Bus, err, s.cfg.Address, busNumber(s.cfg.Bus))
	}
	opts := ads1x15.Opts{I2cAddress: s.cfg.Address}
	var dev *ads1x15.Dev
	if s.cfg.Chip == "ads1015" {
		dev, err = ads1x15.NewADS1015(bus, &opts)
	} else {
		dev, err = ads1x15.NewADS1115(bus, &opts)
	}
	if err != nil {
		return fmt.Errorf("%s %q: %w", s.cfg.Chip, s.cfg.Name, err)
	}
	pins := make([]ads1x15.PinADC, len(s.cfg.Channels))
	for i, ch := range s.cfg.Channels {
		fullScale := physic.ElectricPotential(math.Round(ch.Range*1000)) * physic.MilliVolt
		// BestQuality picks the slowest rate at least DataRate: DataRate itself.
		p, err := dev.PinForChannel(adcInputs[ch.Input], fullScale, physic.Frequency(s.cfg.DataRate)*physic.Hertz, ads1x15.BestQuality)
		if err != nil {
			return fmt.Errorf("%s %q: channel %s: %w", s.cfg.Chip, s.cfg.Name, ch.Input, err)
		}
		pins[i] = p
	}
	s.log.Info(s.cfg.Chip+": converter found", "channels", len(pins))
	return s.poller.loop(ctx, sink, func() ([]edged.Reading, error) {
		rs := make([]edged.Reading, 0, len(pins))
		for i, p := range pins {
			v, err := p.Read()
			if err != nil {
				return rs, fmt.Errorf("channel %s: %w", s.cfg.Channels[i].Input, err)
			}
			ch := &s.cfg.Channels[i]
			volts := float64(v.V) / float64(physic.Volt)
			rs = append(rs, edged.Reading{Series: ch.Series, Unit: ch.Unit, Value: volts*ch.Scale + ch.Offset})
		}
		return rs, nil
	})
}
