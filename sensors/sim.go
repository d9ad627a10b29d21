package sensors

import (
	"context"

	"fmt"
	"math"
	"time"

	"github.com/edged-io/edged"
)

// SimConfig configures the simulated source.
type SimConfig struct {
	// Series is the number of simulated series. Default 4.
	Series int `yaml:"series"`
	// Interval is the time between two readings of a series. Default 1s.
	Interval time.Duration `yaml:"interval"`
	// Seed makes the values reproducible: the same seed gives the same
	// sequence of values. Default 1.
	Seed uint64 `yaml:"seed"`
	// Prefix names the series: "<prefix>/<n>". Default "sim".
	Prefix string `yaml:"prefix"`
	// Unit of the values. Default "°C".
	Unit string `yaml:"unit"`
}

// Validate reports the first invalid field.
func (c *SimConfig) Validate() error {
	if c.Series < 0 || c.Series > 100_000 {
		return fmt.Errorf("sim: series %d out of range 1..100000", c.Series)
	}
	if c.Interval < 0 || (c.Interval > 0 && c.Interval < time.Millisecond) {
		return fmt.Errorf("sim: interval %v is below 1ms", c.Interval)
	}
	return nil
}

func (c SimConfig) withDefaults() SimConfig {
	if c.Series == 0 {
		c.Series = 4
	}
	if c.Interval == 0 {
		c.Interval = time.Second
	}
	if c.Seed == 0 {
		c.Seed = 1
	}
	if c.Prefix == "" {
		c.Prefix = "sim"
	}
	if c.Unit == "" {
		c.Unit = "°C"
	}
	return c
}

// Sim is a deterministic synthetic source for demos, tests and benchmarks:
// every Interval it emits one reading per series in one record. The value
// of reading k of series s depends only on (Seed, s, k): a slow sine around
// a per-series level plus seeded noise, rounded to 0.01.
type Sim struct {
	cfg    SimConfig
	device string
	now    func() time.Time
	names  []string
}

var _ Source = (*Sim)(nil)

// NewSim returns a simulated source for device. now is the clock (nil:
// time.Now).
func NewSim(cfg SimConfig, device string, now func() time.Time) (*Sim, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if now == nil {
		now = time.Now
	}
	s := &Sim{cfg: cfg, device: device, now: now}
	for i := range cfg.Series {
		s.names = append(s.names, fmt.Sprintf("%s/%d", cfg.Prefix, i))
	}
	return s, nil
}

// Value is the k-th value of series s.
func (s *Sim) Value(series int, k uint64) float64 {
	level := 15 + float64(series%7)*2.5
	wave := 5 * math.Sin(2*math.Pi*float64(k)/600+float64(series))
	noise := (float64(splitmix(s.cfg.Seed^uint64(series)<<32^k)>>11)/(1<<53) - 0.5) * 0.4
	return math.Round((level+wave+noise)*100) / 100
}

// splitmix is SplitMix64: a stateless, seedable hash good enough for noise.
func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// Run emits readings until ctx ends.
func (s *Sim) Run(ctx context.Context, sink Sink) error {
	t := time.NewTicker(s.cfg.Interval)
	defer t.Stop()
	batch := make([]edged.Reading, len(s.names))
	for k := uint64(0); ; k++ {
		now := s.now().UnixNano()
		for i, name := range s.names {
			batch[i] = edged.Reading{Device: s.device, Series: name, Unit: s.cfg.Unit, Value: s.Value(i, k),
				Time: now, Ingest: now, Flags: edged.TimeFromIngest}
		}
		if _, err := sink.Append(batch); err != nil {
			return fmt.Errorf("sim: %w", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
