package daemon

import (
	"path/filepath"
	"time"

	"github.com/edged-io/edged/aggregate"
	"github.com/edged-io/edged/internal/config"
	"github.com/edged-io/edged/sync/ship"
	"github.com/edged-io/edged/wal"
)

// buildShipper builds the shipper when a central store is configured. When
// none is, a cursor left by an earlier configuration is removed, so that
// it does not hold back age-based retention.
func (d *Daemon) buildShipper(aggOpts aggregate.Options) error {
	c := d.cfg
	if c.Ship.URL == "" {
		for _, l := range []struct {
			log  *wal.Log
			name string
		}{{d.log, "wal"}, {d.estimates, "estimates"}} {
			if _, ok := l.log.Cursor(ship.DefaultCursor); ok {
				if err := l.log.DeleteCursor(ship.DefaultCursor); err != nil {
					return err
				}
				d.logger.Info("shipping is off: removed the shipper's cursor so retention no longer waits for it", "log", l.name)
			}
		}
		return nil
	}
	token, err := config.Secret(c.Ship.TokenFile)
	if err != nil {
		return err
	}
	// The shipper routes readings the aggregator would refuse under the
	// clock rule to edged_untrusted; a scratch aggregator knows the rule.
	rule, err := aggregate.New(aggOpts)
	if err != nil {
		return err
	}
	o := d.shipOptions(token)
	o.Alpha, o.Untrusted = rule.Options().RelativeAccuracy, rule.Untrusted
	d.shipper, err = ship.New(o)
	return err
}

// shipOptions are the shipper's options but the clock rule's.
func (d *Daemon) shipOptions(token string) ship.Options {
	c := d.cfg
	logger := d.logger.With("component", "ship")
	return ship.Options{
		URL: c.Ship.URL, Token: token, Org: c.Ship.Org, Bucket: c.Ship.Bucket, Device: c.Device,
		Readings: d.log, Estimates: d.estimates,
		BatchSize: c.Ship.BatchSize, FlushInterval: time.Duration(c.Ship.FlushInterval),
		BackoffMax: time.Duration(c.Ship.BackoffMax),
		Quarantine: filepath.Join(c.DataDir, "ship-quarantine"),
		Alert: func(reason string) {
			if reason != "" {
				logger.Error("shipping paused: the central store refuses this device; the log keeps the data meanwhile", "reason", reason)
			} else {
				logger.Info("shipping resumed")
			}
		},
		Logger: logger,
	}
}
