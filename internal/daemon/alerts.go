package daemon

import (
	"path/filepath"
	"runtime/debug"
	"slices"
	"time"

	"github.com/edged-io/edged"
	"github.com/edged-io/edged/aggregate"
	"github.com/edged-io/edged/alerts"
	"github.com/edged-io/edged/alerts/hass"
	"github.com/edged-io/edged/alerts/notify"
	"github.com/edged-io/edged/internal/mqttconn"
)

// alerting runs the alert engine inside the aggregator's stream (so its
// state is checkpointed with the aggregator's and rebuilt by the same
// replay) and hands events and Home Assistant announcements to the
// publisher. All its methods but the publisher's run on the stream's
// goroutine.
type alerting struct {
	engine *alerts.Engine // nil without rules
	pub    *notify.Publisher
	emitFn func(alerts.Event)

	// Home Assistant: series are announced on their first window of the
	// smallest size, whose MQTT output is their state.
	discovery   bool
	stateSize   time.Duration
	prefix      string
	device      string
	deviceClass map[string]string
	announced   map[[2]string]bool
}

// buildAlerting builds the engine (when there are rules) and the
// publisher (when there are rules or discovery is on: it also owns the
// device's status topic).
func (d *Daemon) buildAlerting(conn mqttconn.Options) (*alerting, error) {
	c := d.cfg
	discovery := c.DiscoveryEnabled() && c.Aggregate.Output.Enabled
	if len(c.Alerts.Rules) == 0 && !discovery {
		return nil, nil
	}
	if c.DiscoveryEnabled() && !c.Aggregate.Output.Enabled {
		d.logger.Warn("Home Assistant discovery needs aggregate.mqtt_output (sensor states are window means); announcing alerts only")
	}
	a := &alerting{discovery: discovery, prefix: c.Aggregate.Output.Prefix, device: c.Device, deviceClass: d.deviceClass,
		announced: map[[2]string]bool{}, stateSize: time.Duration(slices.Min(c.Aggregate.Windows))}
	if len(c.Alerts.Rules) > 0 {
		eng, err := alerts.New(c.Alerts.Rules, alerts.Options{})
		if err != nil {
			return nil, err
		}
		a.engine = eng
	}
	pub, err := notify.New(d.notifyOptions(conn))
	if err != nil {
		return nil, err
	}
	a.pub = pub
	a.emitFn = func(e alerts.Event) { pub.Publish(notify.Event(e)) }
	return a, nil
}

// notifyOptions are the alert publisher's options.
func (d *Daemon) notifyOptions(conn mqttconn.Options) notify.Options {
	c := d.cfg
	conn.ClientID = c.MQTT.ClientID + "-alerts"
	version := "devel"
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		version = bi.Main.Version
	}
	return notify.Options{
		Conn:   conn,
		Prefix: c.MQTT.Prefix, Device: c.Device, StateDir: filepath.Join(c.DataDir, "alerts"), QueueLimit: c.Alerts.QueueLimit,
		Discovery: notify.Discovery{Enabled: c.DiscoveryEnabled(), Prefix: c.Alerts.HomeAssistant.DiscoveryPrefix,
			StatusTopic: c.Alerts.HomeAssistant.StatusTopic,
			Device:      hass.Device{ID: c.Device, Name: c.Device, Model: "edged", SWVersion: version}},
		Logger: d.logger.With("component", "alerts"),
	}
}

// window is called for every window the aggregator emits.
func (a *alerting) window(w *aggregate.Window) {
	if !a.discovery || w.Amended || w.Size != a.stateSize {
		return
	}
	key := [2]string{w.Device, w.Series}
	if a.announced[key] {
		return
	}
	a.announced[key] = true
	dc, sc := hass.Classes(w.Unit, w.Series)
	if hint, ok := a.deviceClass[w.Series]; ok && w.Device == a.device {
		dc = hint
	}
	a.pub.AnnounceSeries(hass.SeriesInfo{Device: w.Device, Series: w.Series, Unit: w.Unit, DeviceClass: dc, StateClass: sc,
		StateTopic: windowTopic(a.prefix, *w), ValueTemplate: "{{ value_json.mean }}"})
}

// observer is the stream's view of the engine; nil without rules.
func (a *alerting) observer() *engineObserver {
	if a == nil || a.engine == nil {
		return nil
	}
	return &engineObserver{a}
}

// engineObserver adapts the engine to stream.Observer.
type engineObserver struct{ a *alerting }

func (o *engineObserver) Reading(r *edged.Reading) { o.a.engine.Reading(r, o.a.emitFn) }
func (o *engineObserver) Window(w *aggregate.Window) {
	o.a.engine.Window(w, o.a.emitFn)
}
func (o *engineObserver) Tick(now int64, lsn uint64)     { o.a.engine.Tick(now, lsn, o.a.emitFn) }
func (o *engineObserver) MarshalBinary() ([]byte, error) { return o.a.engine.MarshalBinary() }
func (o *engineObserver) UnmarshalBinary(b []byte) error { return o.a.engine.UnmarshalBinary(b) }
