package sensors

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"time"

	"github.com/edged-io/edged"
)

// ThermalConfig configures the Linux thermal-zone source.
type ThermalConfig struct {
	// Interval between two readings. Default 10s.
	Interval time.Duration `yaml:"interval"`
	// Root is the sysfs directory of the zones. Default /sys/class/thermal.
	Root string `yaml:"root"`
}

// Thermal reads every /sys/class/thermal/thermal_zone*/temp (millidegrees
// Celsius) — the SoC temperature on every Raspberry Pi. Series are named
// "thermal/<type>" from each zone's type file (e.g. thermal/cpu-thermal).
type Thermal struct {
	cfg    ThermalConfig
	device string
	now    func() time.Time
	zones  []zone
}

type zone struct{ series, path string }

var _ Source = (*Thermal)(nil)

// NewThermal finds the thermal zones. On a machine without any it returns
// an error that says so; the daemon logs it and runs its other sources.
func NewThermal(cfg ThermalConfig, device string, now func() time.Time) (*Thermal, error) {
	if cfg.Interval == 0 {
		cfg.Interval = 10 * time.Second
	}
	if cfg.Interval < 100*time.Millisecond {
		return nil, fmt.Errorf("thermal: interval %v is below 100ms", cfg.Interval)
	}
	if cfg.Root == "" {
		cfg.Root = "/sys/class/thermal"
	}
	if now == nil {
		now = time.Now
	}
	dirs, _ := filepath.Glob(filepath.Join(cfg.Root, "thermal_zone*"))
	sort.Strings(dirs)
	t := &Thermal{cfg: cfg, device: device, now: now}
	seen := map[string]int{}
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "temp")); err != nil {
			continue
		}
		typ, err := os.ReadFile(filepath.Join(d, "type"))
		name := string(bytes.TrimSpace(typ))
		if err != nil || name == "" {
			name = filepath.Base(d)
		}
		if n := seen[name]; n > 0 {
			name = fmt.Sprintf("%s-%d", name, n)
		}
		seen[name]++
		t.zones = append(t.zones, zone{series: "thermal/" + name, path: filepath.Join(d, "temp")})
	}
	if len(t.zones) == 0 {
		return nil, fmt.Errorf("%w under %s (not a Raspberry Pi, or sysfs is not mounted); disable the thermal sensor in the config to silence this", errNoZones, cfg.Root)
	}
	return t, nil
}

// Series lists the series the source produces.
func (t *Thermal) Series() []string {
	var s []string
	for _, z := range t.zones {
		s = append(s, z.series)
	}
	return s
}

// Run reads every zone each interval. A zone that cannot be read is
// skipped for that round (and reported once per change of state).
func (t *Thermal) Run(ctx context.Context, sink Sink) error {
	tick := time.NewTicker(t.cfg.Interval)
	defer tick.Stop()
	batch := make([]edged.Reading, 0, len(t.zones))
	for {
		now := t.now().UnixNano()
		batch = batch[:0]
		for _, z := range t.zones {
			v, err := readMilli(z.path)
			if err != nil {
				continue
			}
			batch = append(batch, edged.Reading{Device: t.device, Series: z.series, Unit: "°C", Value: v,
				Time: now, Ingest: now, Flags: edged.TimeFromIngest})
		}
		if len(batch) > 0 {
			if _, err := sink.Append(batch); err != nil {
				return fmt.Errorf("thermal: %w", err)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

func readMilli(path string) (float64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	m, err := strconv.ParseInt(string(bytes.TrimSpace(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("thermal: %s: %q is not millidegrees", path, b)
	}
	return float64(m) / 1000, nil
}

// errNoZones is returned by NewThermal when the machine has no thermal zones.
var errNoZones = errors.New("thermal: no thermal zones")
