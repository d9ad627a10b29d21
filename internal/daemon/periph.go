package daemon

import (
	"fmt"

	"github.com/edged-io/edged/sensors"
	"github.com/edged-io/edged/sensors/periph"
)

// periphSource is what every periph.io driver provides beyond a Source:
// its series with their Home Assistant device classes.
type periphSource interface {
	sensors.Source
	Series() []periph.SeriesInfo
}

// buildPeriph constructs the configured periph.io drivers. Constructors
// touch no hardware: a missing bus or chip shows up when the driver runs,
// and the daemon then reports it and keeps the other sensors running.
func (d *Daemon) buildPeriph() error {
	c := d.cfg
	logger := d.logger.With("component", "sensor")
	add := func(kind string, i int, s periphSource, err error) error {
		if err != nil {
			return fmt.Errorf("sensors.%s[%d]: %w", kind, i, err)
		}
		d.sources = append(d.sources, namedSource{name: fmt.Sprintf("%s[%d]", kind, i), src: s, local: true})
		for _, si := range s.Series() {
			d.deviceClass[si.Series] = si.DeviceClass
		}
		return nil
	}
	for i, cfg := range c.Sensors.BME280 {
		s, err := periph.NewBME280(cfg, c.Device, logger, nil)
		if err := add("bme280", i, s, err); err != nil {
			return err
		}
	}
	for i, cfg := range c.Sensors.DS18B20 {
		s, err := periph.NewDS18B20(cfg, c.Device, logger, nil)
		if err := add("ds18b20", i, s, err); err != nil {
			return err
		}
	}
	for i, cfg := range c.Sensors.ADS1x15 {
		s, err := periph.NewADS1x15(cfg, c.Device, logger, nil)
		if err := add("ads1x15", i, s, err); err != nil {
			return err
		}
	}
	for i, cfg := range c.Sensors.Pulse {
		s, err := periph.NewPulse(cfg, c.Device, logger, nil)
		if err := add("pulse", i, s, err); err != nil {
			return err
		}
	}
	return nil
}
