// Package daemon wires edged together: it builds every component from the
// configuration, runs them, and stops them in order — sources first, then
// the consumers, then the write-ahead log (a final flush), then the broker
// and the HTTP server. It is the only place that knows all the parts.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edged-io/edged/aggregate"
	"github.com/edged-io/edged/aggregate/replay"
	"github.com/edged-io/edged/aggregate/stream"
	"github.com/edged-io/edged/aggregate/view"
	"github.com/edged-io/edged/internal/broker"
	"github.com/edged-io/edged/internal/config"
	"github.com/edged-io/edged/internal/mqttout"
	"github.com/edged-io/edged/internal/sdnotify"
	"github.com/edged-io/edged/sensors"
	"github.com/edged-io/edged/sensors/deadletter"
	"github.com/edged-io/edged/sync/ship"
	"github.com/edged-io/edged/wal"
)

// Daemon is a running edged.
type Daemon struct {
	cfg    *config.Config
	logger *slog.Logger

	log *wal.Log
	// estimates is the log of closed-window rows the shipper sends as the
	// edge's estimates (see aggregate/stream).
	estimates *wal.Log
	broker    *broker.Broker
	sources   []namedSource
	mqtt      *sensors.MQTT
	dead      *deadletter.Store
	views     *view.Store
	out       *mqttout.Publisher
	alerts    *alerting     // nil without rules or discovery
	shipper   *ship.Shipper // nil without a central store
	stream    *stream.Stream
	http      *http.Server
	ln        net.Listener
	metrics   *metrics

	// viewLock is views' version's writer lock; versions serves the API's
	// reads of every version.
	viewLock *view.Lock
	versions *versions

	// deviceClass holds the Home Assistant device class the hardware
	// drivers give their series.
	deviceClass map[string]string
	clock       *clockState
	// now is the daemon's wall clock: time.Now, or the test clock (see
	// TestClockEnv).
	now func() time.Time
	// failedSources counts local sources that stopped with an error.
	failedSources atomic.Int64

	ready   atomic.Bool
	started time.Time
}

type namedSource struct {
	name string
	src  sensors.Source
	// local sources (hardware sensors) fail alone: the error is reported
	// and the other sources keep running.
	local bool
}

// New builds the daemon: it opens (and recovers) the log, prepares the
// sources and binds the HTTP listener. It starts no goroutine. A source
// that cannot start on this machine (no thermal zones, say) is reported and
// left out; the others run.
func New(cfg *config.Config, logger *slog.Logger) (*Daemon, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	now, synced := daemonClock(logger)
	d := &Daemon{cfg: cfg, logger: logger, started: time.Now(), deviceClass: map[string]string{},
		clock: newClockState(cfg.Clock.RequireSync, synced, now, logger.With("component", "clock")), now: now}
	if d.clock.kernelUnsynced.Load() {
		logger.Warn("the system clock is not synchronised (no NTP yet?): readings stamped with it are flagged untrusted until it is (clock.require_sync)")
	}
	policy, _ := wal.ParseSyncPolicy(cfg.WAL.Fsync)
	l, err := wal.Open(wal.Options{
		Dir:            filepath.Join(cfg.DataDir, "wal"),
		Sync:           policy,
		SyncInterval:   time.Duration(cfg.WAL.FsyncInterval),
		SegmentSize:    int64(cfg.WAL.SegmentSize),
		RetentionAge:   time.Duration(cfg.WAL.MaxAge),
		RetentionBytes: int64(cfg.WAL.MaxBytes),
		VerifyOnStart:  true,
		Logger:         logger.With("component", "wal"),
	})
	if err != nil {
		return nil, err
	}
	d.log = l
	est, err := wal.Open(wal.Options{
		Dir:          filepath.Join(cfg.DataDir, "estimates"),
		Sync:         wal.SyncInterval,
		SyncInterval: 10 * time.Millisecond,
		SegmentSize:  4 << 20,
		// Rows are small and superseded; keep what the shipper has not
		// sent within a tenth of the readings log's quota.
		RetentionAge:   time.Duration(cfg.WAL.MaxAge),
		RetentionBytes: max(int64(cfg.WAL.MaxBytes)/10, 16<<20),
		VerifyOnStart:  true,
		Logger:         logger.With("component", "estimates"),
	})
	if err != nil {
		l.Close()
		return nil, err
	}
	d.estimates = est
	closeLogs := func() {
		l.Close()
		est.Close()
	}
	if err := d.buildSources(); err != nil {
		closeLogs()
		return nil, err
	}
	if err := d.buildAggregation(); err != nil {
		closeLogs()
		return nil, err
	}
	d.metrics = newMetrics(d)
	token, err := config.Secret(cfg.HTTP.TokenFile)
	if err != nil {
		d.closeViews()
		closeLogs()
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.HTTP.Listen)
	if err != nil {
		d.closeViews()
		closeLogs()
		return nil, fmt.Errorf("http: listen on %s: %w", cfg.HTTP.Listen, err)
	}
	d.ln = ln
	d.http = &http.Server{Handler: d.routes(token), ReadHeaderTimeout: 5 * time.Second}
	return d, nil
}

func (d *Daemon) buildSources() error {
	c := d.cfg
	if c.Sensors.Sim.Enabled {
		sim, err := sensors.NewSim(sensors.SimConfig{Series: c.Sensors.Sim.Series, Interval: time.Duration(c.Sensors.Sim.Interval),
			Seed: c.Sensors.Sim.Seed}, c.Device, d.now)
		if err != nil {
			return err
		}
		d.sources = append(d.sources, namedSource{name: "sim", src: sim})
	}
	if c.Sensors.Thermal.Enabled {
		th, err := sensors.NewThermal(sensors.ThermalConfig{Interval: time.Duration(c.Sensors.Thermal.Interval)}, c.Device, d.now)
		if err != nil {
			d.logger.Warn("thermal sensor not started", "err", err)
		} else {
			d.sources = append(d.sources, namedSource{name: "thermal", src: th, local: true})
		}
	}
	if err := d.buildPeriph(); err != nil {
		return err
	}
	if c.MQTT.Broker == "" {
		d.broker = newEmbedded(c.MQTT.EmbeddedListen, d.logger)
	}
	if len(c.MQTT.Subscriptions) > 0 {
		subs, err := buildSubscriptions(c)
		if err != nil {
			return err
		}
		conn, err := d.mqttConn()
		if err != nil {
			return err
		}
		dead, err := deadletter.Open(filepath.Join(c.DataDir, "deadletter"), deadletter.Options{})
		if err != nil {
			return err
		}
		d.dead = dead
		m, err := sensors.NewMQTT(d.mqttSourceOptions(conn, subs, dead))
		if err != nil {
			return err
		}
		d.mqtt = m
		d.sources = append(d.sources, namedSource{name: "mqtt", src: m})
	}
	return nil
}

func (d *Daemon) buildAggregation() error {
	c := d.cfg
	sizes := make([]time.Duration, len(c.Aggregate.Windows))
	for i, w := range c.Aggregate.Windows {
		sizes[i] = time.Duration(w)
	}
	// The views of version aggregate.view, in DATA/views/<version>
	// (see aggregate/replay): locked while this daemon writes them.
	lay := replay.Layout{DataDir: c.DataDir}
	if moved, err := view.Migrate(lay.Views()); err != nil {
		return err
	} else if moved {
		d.logger.Info("views moved to the versioned layout", "version", view.LegacyVersion, "dir", lay.Views())
	}
	lock, err := view.LockVersion(lay.Views(), c.Aggregate.View, "edged run")
	if err != nil {
		return fmt.Errorf("%w; stop it, or set aggregate.view to another version", err)
	}
	aggOpts := AggregateOptions(c)
	views, err := view.Open(view.VersionDir(lay.Views(), c.Aggregate.View), sizes, view.DefaultKeep)
	if err == nil {
		err = errors.Join(view.SetLive(lay.Views(), c.Aggregate.View), replay.EnsureLiveManifest(lay.Views(), c.Aggregate.View, aggOpts))
	}
	if err != nil {
		if views != nil {
			views.Close()
		}
		lock.Unlock()
		return err
	}
	d.views, d.viewLock = views, lock
	d.versions = newVersions(lay.Views(), c.Aggregate.View, views, sizes)
	conn, err := d.mqttConn()
	if err != nil {
		d.closeViews()
		return err
	}
	if d.alerts, err = d.buildAlerting(conn); err != nil {
		d.closeViews()
		return err
	}
	var emits []func(*aggregate.Window)
	if o := c.Aggregate.Output; o.Enabled {
		d.out, err = mqttout.New(d.windowOutputOptions(conn))
		if err != nil {
			d.closeViews()
			return err
		}
		emits = append(emits, func(w *aggregate.Window) {
			d.out.Publish(mqttout.Message{Topic: windowTopic(o.Prefix, *w), Payload: windowJSON(*w, o.SeriesKey), QoS: byte(o.QoS)})
		})
	}
	if d.alerts != nil {
		emits = append(emits, d.alerts.window)
	}
	var emit func(aggregate.Window)
	if len(emits) > 0 {
		emit = func(w aggregate.Window) {
			for _, e := range emits {
				e(&w)
			}
		}
	}
	var observer stream.Observer
	if o := d.alerts.observer(); o != nil {
		observer = o
	}
	if err := d.buildShipper(aggOpts); err != nil {
		d.closeViews()
		return err
	}
	st, err := stream.New(stream.Options{
		Emit:      emit,
		Log:       d.log,
		Estimates: d.estimates,
		Observer:  observer,
		Dir:       lay.Checkpoints(c.Aggregate.View),
		Views:     views,
		Aggregate: aggOpts,
		Logger:    d.logger.With("component", "aggregate"),
	})
	if err != nil {
		d.closeViews()
		return err
	}
	d.stream = st
	return nil
}

// brokerURL is the configured broker, or the embedded one.
func (d *Daemon) brokerURL() string {
	if d.cfg.MQTT.Broker != "" {
		return d.cfg.MQTT.Broker
	}
	return "tcp://" + d.cfg.MQTT.EmbeddedListen
}

func newEmbedded(addr string, logger *slog.Logger) *broker.Broker { return broker.New(addr, logger) }

// Addr is the HTTP listener's address.
func (d *Daemon) Addr() string { return d.ln.Addr().String() }

// Run runs until ctx ends or a component fails, then stops everything in
// order and returns the first failure (nil after a clean stop).
func (d *Daemon) Run(ctx context.Context) error {
	var (
		errOnce  sync.Once
		firstErr error
	)
	failed := make(chan struct{})
	fail := func(name string, err error) {
		if err == nil || errors.Is(err, context.Canceled) {
			return
		}
		errOnce.Do(func() {
			firstErr = componentError(name, err)
			close(failed)
		})
	}
	// Each stage has its own context so that it is stopped in order, not
	// all at once when ctx ends.
	stage := func() (context.Context, context.CancelFunc, *sync.WaitGroup) {
		c, cancel := context.WithCancel(context.Background())
		return c, cancel, &sync.WaitGroup{}
	}

	// The log first and last.
	walCtx, stopWAL, walWG := stage()
	walWG.Go(func() { fail("wal", d.log.Run(walCtx)) })
	walWG.Go(func() { fail("estimates log", d.estimates.Run(walCtx)) })

	brokerCtx, stopBroker, brokerWG := stage()
	if d.broker != nil {
		up := make(chan struct{})
		brokerWG.Go(func() { fail("embedded broker", d.broker.Run(brokerCtx, func() { close(up) })) })
		select {
		case <-up:
		case <-failed:
		case <-time.After(5 * time.Second):
		}
	}

	// Publishers stop before the embedded broker, so that they can drain
	// and say "offline".
	outCtx, stopOut, outWG := stage()
	if d.out != nil {
		outWG.Go(func() { fail("mqtt output", d.out.Run(outCtx)) })
	}
	if d.alerts != nil {
		outWG.Go(func() { fail("alert delivery", d.alerts.pub.Run(outCtx)) })
	}

	httpWG := &sync.WaitGroup{}
	httpWG.Go(func() {
		if err := d.http.Serve(d.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			fail("http", err)
		}
	})

	shipCtx, stopShip, shipWG := stage()
	if d.shipper != nil {
		shipWG.Go(func() { fail("shipper", d.shipper.Run(shipCtx)) })
	}

	aggCtx, stopAgg, aggWG := stage()
	aggWG.Go(func() { fail("aggregator", d.stream.Run(aggCtx)) })

	srcCtx, stopSources, srcWG := stage()
	srcWG.Go(func() { fail("ticker", ticker{d.log, time.Second, d.clock, d.now}.Run(srcCtx)) })
	for _, s := range d.sources {
		srcWG.Go(func() {
			err := s.src.Run(srcCtx, sensors.LogSink{Log: d.log, Unsynced: d.clock.Unsynced})
			if s.local && err != nil && srcCtx.Err() == nil && d.log.Err() == nil {
				// A sensor that is not there, or broke, does not stop the others.
				d.failedSources.Add(1)
				d.logger.Error("sensor stopped; the other sources keep running", "sensor", s.name, "err", err)
				return
			}
			fail("sensor "+s.name, err)
		})
	}
	d.ready.Store(true)
	d.logger.Info("edged running", "device", d.cfg.Device, "http", d.Addr(), "sources", len(d.sources),
		"startup", time.Since(d.started).Round(time.Millisecond))
	// systemd (Type=notify): ready when /readyz is (see awaitSubscribed);
	// the watchdog is fed only while the log keeps growing (the ticker
	// appends every second) without error.
	if d.awaitSubscribed(ctx, failed) {
		sdnotify.Ready()
	}
	sdCtx, stopWatchdog := context.WithCancel(context.Background())
	sdWG := &sync.WaitGroup{}
	var lastLSN uint64
	sdWG.Go(func() {
		err := sdnotify.Run(sdCtx, func() bool {
			lsn := d.log.DurableLSN()
			ok := d.log.Err() == nil && lsn > lastLSN
			lastLSN = lsn
			return ok
		})
		if err != nil {
			d.logger.Warn("systemd watchdog", "err", err)
		}
	})

	select {
	case <-ctx.Done():
		d.logger.Info("stopping")
	case <-failed:
		d.logger.Error("stopping after a failure", "err", firstErr)
	}
	sdnotify.Stopping()
	stopWatchdog()
	sdWG.Wait()
	d.ready.Store(false)
	stopSources()
	srcWG.Wait()
	stopAgg()
	aggWG.Wait()
	if d.shipper != nil {
		// The shipper reads durable records: make the last ones durable
		// (an interval's wait at most) so the final attempt includes them.
		wctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		d.log.WaitDurable(wctx, d.log.Stats().LastLSN)
		d.estimates.WaitDurable(wctx, d.estimates.Stats().LastLSN)
		cancel()
	}
	stopShip() // a final attempt, within the shipper's deadline
	shipWG.Wait()
	stopWAL()
	walWG.Wait()
	if err := d.log.Close(); err != nil {
		fail("wal", err)
	}
	if err := d.estimates.Close(); err != nil {
		fail("estimates log", err)
	}
	if err := d.closeViews(); err != nil {
		fail("views", err)
	}
	if d.dead != nil {
		if err := d.dead.Close(); err != nil {
			fail("dead letters", err)
		}
	}
	stopOut()
	outWG.Wait()
	stopBroker()
	brokerWG.Wait()
	shutCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	d.http.Shutdown(shutCtx)
	httpWG.Wait()
	return firstErr
}

// componentError names the component whose failure stops the daemon,
// unless the error names it already: the log's errors start with "wal: ",
// the sim sensor's with "sim: ", so "wal: wal: log failed" and "sensor
// sim: sim: …" would repeat themselves.
func componentError(name string, err error) error {
	qualifier, short := "", name
	if i := strings.LastIndexByte(name, ' '); i >= 0 {
		qualifier, short = name[:i+1], name[i+1:]
	}
	if !strings.HasPrefix(err.Error(), short+": ") {
		return fmt.Errorf("%s: %w", name, err)
	}
	if qualifier == "" {
		return err
	}
	return fmt.Errorf("%s%w", qualifier, err)
}
