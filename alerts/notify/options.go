package notify

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/edged-io/edged/alerts/hass"
	"github.com/edged-io/edged/internal/mqttconn"
)

// Defaults of Options.
const (
	DefaultQueueLimit           = 10_000
	DefaultStatusTopic          = "homeassistant/status"
	DefaultMaxReconnectInterval = mqttconn.DefaultMaxReconnectInterval
	DefaultDrainTimeout         = 2 * time.Second
)

// Options configure a Publisher. Zero values mean the documented defaults.
type Options struct {
	// Conn is the broker, the credentials, TLS and the reconnect cap
	// (the backoff starts at 250ms and doubles up to Conn's
	// MaxReconnectInterval, default 30s). Conn.ClientID must be fixed
	// across restarts: the broker keeps the persistent session (the Home
	// Assistant status subscription) under it. It must differ from every
	// other client of the broker, edged's own MQTT source and window output
	// included. Broker and ClientID are required.
	Conn mqttconn.Options

	// Prefix is the first topic level; default "edged".
	Prefix string
	// Device is the edge device id: the device level of the status topic
	// and of alerts whose event names no device. Required; it must be a
	// single topic level (no '/', '+', '#').
	Device string

	// StateDir is where the delivered mark is saved (file
	// alerts-delivered), so that a restart does not announce replayed
	// events again. Empty disables restart safety.
	StateDir string

	// QueueLimit is the number of events waiting for the broker beyond
	// which Publish coalesces the queue. Default 10,000.
	QueueLimit int

	// Discovery configures Home Assistant MQTT discovery.
	Discovery Discovery

	// DrainTimeout bounds how long a stop keeps delivering queued events
	// before publishing "offline" and disconnecting. Default 2s.
	DrainTimeout time.Duration

	// Logger receives connection and queue events; nil discards them.
	Logger *slog.Logger
}

// Discovery configures Home Assistant MQTT discovery.
type Discovery struct {
	// Enabled turns discovery on. Off, nothing is announced and the Home
	// Assistant status topic is not subscribed to.
	Enabled bool
	// Prefix is Home Assistant's discovery prefix; default "homeassistant".
	Prefix string
	// StatusTopic is where Home Assistant announces "online" after it
	// starts; default "homeassistant/status".
	StatusTopic string
	// Device is the Home Assistant device all entities belong to. Its ID
	// defaults to Options.Device, its Name to the ID.
	Device hass.Device
}

// LogValue lists the options without the password.
func (o Options) LogValue() slog.Value {
	return slog.GroupValue(
		slog.Any("conn", o.Conn),
		slog.String("prefix", o.Prefix), slog.String("device", o.Device),
		slog.String("state_dir", o.StateDir), slog.Int("queue_limit", o.QueueLimit),
		slog.Bool("discovery", o.Discovery.Enabled),
	)
}

// Validate reports the first problem with the options, naming the field.
// Zero values are valid where a default exists.
func (o Options) Validate() error {
	if o.Conn.ClientID == "" {
		return errors.New("notify: a fixed client id is required for a persistent session")
	}
	if err := o.Conn.Validate(); err != nil {
		return err
	}
	if o.Device == "" || strings.ContainsAny(o.Device, "/+#\x00") {
		return fmt.Errorf("notify: device %q must be a non-empty topic level without /, + or #", o.Device)
	}
	if strings.ContainsAny(o.Prefix, "+#\x00") || strings.HasPrefix(o.Prefix, "$") {
		return fmt.Errorf("notify: prefix %q must not contain + or # nor start with $", o.Prefix)
	}
	if o.QueueLimit < 0 {
		return fmt.Errorf("notify: queue limit %d is negative", o.QueueLimit)
	}
	if o.DrainTimeout < 0 {
		return errors.New("notify: the drain timeout must not be negative")
	}
	if d := o.Discovery; d.Enabled {
		if strings.ContainsAny(d.Prefix, "/+#\x00") {
			return fmt.Errorf("notify: discovery prefix %q must be a single topic level", d.Prefix)
		}
		if strings.ContainsAny(d.StatusTopic, "+#\x00") {
			return fmt.Errorf("notify: Home Assistant status topic %q must not contain + or #", d.StatusTopic)
		}
		if strings.ContainsAny(d.Device.ID, "/+#\x00") {
			return fmt.Errorf("notify: discovery device id %q must be a single topic level", d.Device.ID)
		}
	}
	return nil
}

// withDefaults returns o with zero values replaced by defaults.
func (o Options) withDefaults() Options {
	if o.Prefix == "" {
		o.Prefix = hass.DefaultPrefix
	}
	if o.QueueLimit == 0 {
		o.QueueLimit = DefaultQueueLimit
	}
	if o.Conn.MaxReconnectInterval == 0 {
		o.Conn.MaxReconnectInterval = DefaultMaxReconnectInterval
	}
	if o.DrainTimeout == 0 {
		o.DrainTimeout = DefaultDrainTimeout
	}
	if o.Discovery.Prefix == "" {
		o.Discovery.Prefix = hass.DefaultDiscoveryPrefix
	}
	if o.Discovery.StatusTopic == "" {
		o.Discovery.StatusTopic = DefaultStatusTopic
	}
	if o.Discovery.Device.ID == "" {
		o.Discovery.Device.ID = o.Device
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}
