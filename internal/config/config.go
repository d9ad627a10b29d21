// Package config loads edged's YAML configuration: one documented file with
// defaults for everything, validated with errors that name the file and
// line. Secrets are never in the file: it names files (or systemd
// credentials) to read them from, and Redacted shows what a config means
// without them.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/edged-io/edged/aggregate/view"
	"github.com/edged-io/edged/alerts"
	"github.com/edged-io/edged/internal/yamltype"
	"github.com/edged-io/edged/sensors/payload"
	"github.com/edged-io/edged/sensors/periph"
	"github.com/edged-io/edged/wal"
)

// Config is the whole configuration. The zero value of every field means
// its documented default; Load fills the defaults in.
type Config struct {
	// Device identifies this edge device in every reading. Default: the hostname.
	Device string `yaml:"device"`
	// DataDir holds the log, checkpoints, views and dead letters. Default ./data.
	DataDir string `yaml:"data_dir"`
	// LogLevel: debug, info, warn or error. Default info.
	LogLevel string `yaml:"log_level"`

	WAL       WAL       `yaml:"wal"`
	HTTP      HTTP      `yaml:"http"`
	MQTT      MQTT      `yaml:"mqtt"`
	Sensors   Sensors   `yaml:"sensors"`
	Aggregate Aggregate `yaml:"aggregate"`
	Alerts    Alerts    `yaml:"alerts"`
	Ship      Ship      `yaml:"ship"`
	Clock     Clock     `yaml:"clock"`

	path  string
	lines map[string]int // dotted key path → line, for errors
}

// WAL configures the write-ahead log.
type WAL struct {
	// Fsync: always, interval (default) or never.
	Fsync string `yaml:"fsync"`
	// FsyncInterval bounds how long a written record waits for fsync. Default 5ms.
	FsyncInterval Duration `yaml:"fsync_interval"`
	// SegmentSize of log files. Default 16MiB.
	SegmentSize Size `yaml:"segment_size"`
	// MaxAge removes consumed log older than this. Default 168h (a week); 0 keeps it.
	MaxAge Duration `yaml:"max_age"`
	// MaxBytes is the hard quota on the log's size. Default 1GiB.
	MaxBytes Size `yaml:"max_bytes"`
}

// HTTP configures the API and metrics endpoint.
type HTTP struct {
	// Listen address. Default 127.0.0.1:8080. Anything but loopback
	// requires TokenFile.
	Listen string `yaml:"listen"`
	// TokenFile holds the bearer token clients must send (not the token itself).
	TokenFile string `yaml:"token_file,omitempty"`
	// Pprof serves Go's profiler under /debug/pprof/ (behind the token, if any).
	Pprof bool `yaml:"pprof"`
}

// MQTT configures the broker connection and the subscriptions to ingest.
type MQTT struct {
	// Broker URL (tcp://host:1883, ssl://host:8883). Empty: edged runs an
	// embedded broker on EmbeddedListen.
	Broker string `yaml:"broker"`
	// EmbeddedListen is the embedded broker's address. Default 127.0.0.1:1883.
	EmbeddedListen string `yaml:"embedded_listen"`
	// ClientID of the persistent session. Default edged-<device>.
	ClientID string `yaml:"client_id"`
	Username string `yaml:"username"`
	// PasswordFile holds the password (or use a systemd credential).
	PasswordFile string `yaml:"password_file,omitempty"`
	// TLS configures TLS to an ssl://, tls://, mqtts:// or wss:// broker:
	// the CA to trust and a client certificate. Without it such a broker
	// is verified against the system's roots.
	TLS MQTTTLS `yaml:"tls,omitempty"`
	// ReconnectMax caps the reconnect backoff of edged's MQTT clients
	// (ingest, window output, alerts): after a long outage, the broker's
	// return is noticed within this long. Default 10s.
	ReconnectMax Duration `yaml:"reconnect_max"`
	// Prefix is the first topic level of everything edged publishes
	// (<prefix>/<device>/…). Default "edged".
	Prefix string `yaml:"prefix"`
	// Subscriptions to ingest.
	Subscriptions []Subscription `yaml:"subscriptions"`
}

// Subscription is one topic filter and how to decode its payloads: the
// payload keys (format, series, fields, time, unit, …) are documented in
// sensors/payload.
type Subscription struct {
	Topic string `yaml:"topic"`
	// QoS 0 or 1 (default 1: lossless).
	QoS            *int `yaml:"qos"`
	payload.Config `yaml:",inline"`
}

// Sensors configures the local sources.
type Sensors struct {
	Sim     SimSensor     `yaml:"sim"`
	Thermal ThermalSensor `yaml:"thermal"`
	// periph.io drivers: one entry per chip, pin or 1-Wire group (the
	// keys are documented in sensors/periph and configs/periph.yaml).
	BME280  []periph.BME280Config  `yaml:"bme280"`
	DS18B20 []periph.DS18B20Config `yaml:"ds18b20"`
	ADS1x15 []periph.ADS1x15Config `yaml:"ads1x15"`
	Pulse   []periph.PulseConfig   `yaml:"pulse"`
}

// SimSensor configures the simulated source.
type SimSensor struct {
	Enabled  bool     `yaml:"enabled"`
	Series   int      `yaml:"series"`
	Interval Duration `yaml:"interval"`
	Seed     uint64   `yaml:"seed"`
}

// ThermalSensor configures the Linux thermal-zone source.
type ThermalSensor struct {
	Enabled  bool     `yaml:"enabled"`
	Interval Duration `yaml:"interval"`
}

// Aggregate configures the speed layer's windows.
type Aggregate struct {
	// Windows: tumbling window sizes, each a multiple of the smallest.
	// Default [10s, 1m, 1h].
	Windows []Duration `yaml:"windows"`
	// Lateness a reading may have and still be folded in. Default 5s.
	Lateness Duration `yaml:"lateness"`
	// IdleAfter closes the windows of a series silent this long (processing
	// time). Default 30s.
	IdleAfter Duration `yaml:"idle_after"`
	// Quantiles reported per window. Default [0.5, 0.95, 0.99].
	Quantiles []float64 `yaml:"quantiles"`
	// View names the version of the views the daemon computes and writes
	// (DATA/views/<view>, see edged replay). Default v1.
	View string `yaml:"view"`
	// Output publishes every closed window (and every later addition to
	// its accounting) as JSON to <prefix>/<device>/agg/<window>/<series>.
	Output WindowOutput `yaml:"mqtt_output"`
}

// WindowOutput configures the MQTT output of closed windows.
type WindowOutput struct {
	Enabled bool   `yaml:"enabled"`
	Prefix  string `yaml:"prefix"` // default mqtt.prefix
	QoS     int    `yaml:"qos"`    // 0 (default) or 1
	// SeriesKey names the series in the JSON payload, for consumers that
	// expect another key (e.g. "sensor"). Default "series".
	SeriesKey string `yaml:"series_key"`
}

// Alerts configures alert rules and their delivery over MQTT (QoS 1,
// retained, to <prefix>/<device>/alerts/<rule>/<series>).
type Alerts struct {
	// Rules: see alerts.Rule (and the README) for the keys.
	Rules []alerts.Rule `yaml:"rules"`
	// QueueLimit bounds the events waiting for the broker (beyond it, only
	// the latest state per alert is kept). Default 10000.
	QueueLimit int `yaml:"queue_limit"`
	// HomeAssistant configures MQTT discovery.
	HomeAssistant HomeAssistant `yaml:"homeassistant"`
}

// HomeAssistant configures Home Assistant MQTT discovery: series as
// sensors (their state is the mean of the smallest window, so
// aggregate.mqtt_output must be on), alerts as problem binary_sensors.
type HomeAssistant struct {
	// Discovery: default on when mqtt.broker is set (an external broker
	// Home Assistant can use), off with the embedded broker.
	Discovery *bool `yaml:"discovery"`
	// DiscoveryPrefix, default "homeassistant".
	DiscoveryPrefix string `yaml:"discovery_prefix"`
	// StatusTopic on which Home Assistant announces "online" after a
	// restart; edged then publishes its discovery configs again. Default
	// "homeassistant/status".
	StatusTopic string `yaml:"status_topic"`
}

// DiscoveryEnabled reports whether Home Assistant discovery is on.
func (c *Config) DiscoveryEnabled() bool {
	if d := c.Alerts.HomeAssistant.Discovery; d != nil {
		return *d
	}
	return c.MQTT.Broker != ""
}

// Clock configures how far edged trusts the local clock.
type Clock struct {
	// RequireSync flags readings stamped with the local clock as untrusted
	// while the kernel reports the clock unsynchronised (a Raspberry Pi has
	// no RTC: until NTP sets it, it runs from 1970 or the last shutdown).
	// Off by default, because containers and VMs often report an
	// unsynchronised clock that is in fact right; turn it on on a Pi with
	// systemd-timesyncd or chrony. Readings before 2020 or over 5 minutes
	// in the future are untrusted whatever this says.
	RequireSync bool `yaml:"require_sync"`
}

// Ship configures shipping the log to a central InfluxDB (2.x, or 1.8+
// through its v2 compatibility API). Off until URL is set; meanwhile the
// log keeps what its quota allows.
type Ship struct {
	// URL of the server, e.g. http://central:8086.
	URL string `yaml:"url"`
	// Org is the InfluxDB 2.x organisation (empty for 1.8).
	Org string `yaml:"org"`
	// Bucket: a 2.x bucket, or "database/retention-policy" on 1.8.
	Bucket string `yaml:"bucket"`
	// TokenFile holds the API token (1.8: "user:password"), or names a
	// systemd credential.
	TokenFile string `yaml:"token_file,omitempty"`
	// BatchSize is the most points per write. Default 5000.
	BatchSize int `yaml:"batch_size"`
	// FlushInterval ships a partial batch after this long. Default 1s.
	FlushInterval Duration `yaml:"flush_interval"`
	// BackoffMax caps the backoff between retries while the server is
	// unreachable or failing: after a long outage, shipping resumes within
	// this long of its return. Default 30s.
	BackoffMax Duration `yaml:"backoff_max"`
}

// Default returns the embedded defaults (what `make run` uses).
func Default() *Config {
	c := &Config{}
	c.Sensors.Sim.Enabled = true
	c.Sensors.Thermal.Enabled = true
	c.Aggregate.Output.Enabled = true // so that `make run` shows windows on the embedded broker
	c.applyDefaults()
	return c
}

func (c *Config) applyDefaults() {
	if c.Device == "" {
		c.Device, _ = os.Hostname()
		if c.Device == "" {
			c.Device = "edged"
		}
	}
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&c.DataDir, "./data")
	def(&c.LogLevel, "info")
	def(&c.WAL.Fsync, "interval")
	if c.WAL.FsyncInterval == 0 {
		c.WAL.FsyncInterval = Duration(5 * time.Millisecond)
	}
	if c.WAL.SegmentSize == 0 {
		c.WAL.SegmentSize = 16 << 20
	}
	if c.WAL.MaxBytes == 0 {
		c.WAL.MaxBytes = 1 << 30
	}
	if c.lines == nil || c.lines["wal.max_age"] == 0 {
		c.WAL.MaxAge = Duration(7 * 24 * time.Hour)
	}
	def(&c.HTTP.Listen, "127.0.0.1:8080")
	def(&c.MQTT.EmbeddedListen, "127.0.0.1:1883")
	def(&c.MQTT.ClientID, "edged-"+c.Device)
	def(&c.MQTT.Prefix, "edged")
	if c.lines["mqtt.reconnect_max"] == 0 { // absent; an explicit 0 is refused by Validate
		c.MQTT.ReconnectMax = Duration(10 * time.Second)
	}
	for i := range c.MQTT.Subscriptions {
		if c.MQTT.Subscriptions[i].QoS == nil {
			one := 1
			c.MQTT.Subscriptions[i].QoS = &one
		}
	}
	if c.Sensors.Sim.Series == 0 {
		c.Sensors.Sim.Series = 4
	}
	if c.Sensors.Sim.Interval == 0 {
		c.Sensors.Sim.Interval = Duration(time.Second)
	}
	if c.Sensors.Sim.Seed == 0 {
		c.Sensors.Sim.Seed = 1
	}
	if c.Sensors.Thermal.Interval == 0 {
		c.Sensors.Thermal.Interval = Duration(10 * time.Second)
	}
	if len(c.Aggregate.Windows) == 0 {
		c.Aggregate.Windows = []Duration{Duration(10 * time.Second), Duration(time.Minute), Duration(time.Hour)}
	}
	if c.Aggregate.Lateness == 0 {
		c.Aggregate.Lateness = Duration(5 * time.Second)
	}
	def(&c.Aggregate.Output.Prefix, c.MQTT.Prefix)
	def(&c.Aggregate.Output.SeriesKey, "series")
	if c.Alerts.QueueLimit == 0 {
		c.Alerts.QueueLimit = 10_000
	}
	def(&c.Alerts.HomeAssistant.DiscoveryPrefix, "homeassistant")
	def(&c.Alerts.HomeAssistant.StatusTopic, "homeassistant/status")
	if c.Ship.BatchSize == 0 {
		c.Ship.BatchSize = 5000
	}
	if c.Ship.FlushInterval == 0 {
		c.Ship.FlushInterval = Duration(time.Second)
	}
	if c.lines["ship.backoff_max"] == 0 {
		c.Ship.BackoffMax = Duration(30 * time.Second)
	}
	if c.Aggregate.IdleAfter == 0 {
		c.Aggregate.IdleAfter = Duration(30 * time.Second)
	}
	if len(c.Aggregate.Quantiles) == 0 {
		c.Aggregate.Quantiles = []float64{0.5, 0.95, 0.99}
	}
	def(&c.Aggregate.View, view.LegacyVersion)
}

// Load reads, parses, defaults and validates the file at path.
func Load(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return Parse(path, b)
}

// Parse parses a config from b; path is used in error messages.
func Parse(path string, b []byte) (*Config, error) {
	c := &Config{path: path, lines: map[string]int{}}
	var root yaml.Node
	if err := yaml.Unmarshal(b, &root); err != nil {
		return nil, fileError(path, err)
	}
	if len(root.Content) > 0 {
		collectLines(root.Content[0], "", c.lines)
		dec := yaml.NewDecoder(bytes.NewReader(b))
		dec.KnownFields(true)
		if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
			return nil, fileError(path, err)
		}
	}
	c.applyDefaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// fileError turns yaml's "yaml: line 3: …" into "FILE:3: …".
func fileError(path string, err error) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	msg = strings.ReplaceAll(msg, "unmarshal errors:\n  ", "")
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if n, tail, ok := strings.Cut(rest, ": "); ok {
			return fmt.Errorf("%s:%s: %s", path, n, tail)
		}
	}
	return fmt.Errorf("%s: %s", path, msg)
}

func collectLines(n *yaml.Node, prefix string, lines map[string]int) {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			key := n.Content[i].Value
			if prefix != "" {
				key = prefix + "." + key
			}
			lines[key] = n.Content[i].Line
			collectLines(n.Content[i+1], key, lines)
		}
	case yaml.SequenceNode:
		for i, item := range n.Content {
			key := fmt.Sprintf("%s[%d]", prefix, i)
			lines[key] = item.Line
			collectLines(item, key, lines)
		}
	}
}

// errAt formats a validation error at the line of the dotted key.
func (c *Config) errAt(key, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	if line := c.lines[key]; line > 0 && c.path != "" {
		return fmt.Errorf("%s:%d: %s: %s", c.path, line, key, msg)
	}
	if c.path != "" {
		return fmt.Errorf("%s: %s: %s", c.path, key, msg)
	}
	return fmt.Errorf("config: %s: %s", key, msg)
}

// Validate checks every field and returns all problems, each with its line.
func (c *Config) Validate() error {
	var errs []error
	add := func(key, format string, args ...any) { errs = append(errs, c.errAt(key, format, args...)) }

	if strings.ContainsAny(c.Device, "/#+ \t") {
		add("device", "%q must not contain /, #, + or spaces (it is an MQTT topic level)", c.Device)
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		add("log_level", "%q is not one of debug, info, warn, error", c.LogLevel)
	}
	if _, err := wal.ParseSyncPolicy(c.WAL.Fsync); err != nil {
		add("wal.fsync", "%q is not one of always, interval, never", c.WAL.Fsync)
	}
	if c.WAL.FsyncInterval < 0 || time.Duration(c.WAL.FsyncInterval) > time.Second {
		add("wal.fsync_interval", "%v is outside 0..1s", time.Duration(c.WAL.FsyncInterval))
	}
	if c.WAL.SegmentSize < 64<<10 || c.WAL.SegmentSize > 1<<30 {
		add("wal.segment_size", "%s is outside 64KiB..1GiB", c.WAL.SegmentSize)
	}
	if c.WAL.MaxBytes < 4*c.WAL.SegmentSize {
		add("wal.max_bytes", "%s must be at least 4 segments (%s)", c.WAL.MaxBytes, 4*c.WAL.SegmentSize)
	}
	host, _, err := net.SplitHostPort(c.HTTP.Listen)
	if err != nil {
		add("http.listen", "%q is not host:port", c.HTTP.Listen)
	} else if ip := net.ParseIP(host); (ip == nil || !ip.IsLoopback()) && host != "localhost" && c.HTTP.TokenFile == "" {
		add("http.listen", "%q is not a loopback address: set http.token_file so the API requires a token", c.HTTP.Listen)
	}
	if c.MQTT.Broker != "" && !hasScheme(c.MQTT.Broker, "tcp://", "ssl://", "tls://", "mqtt://", "mqtts://", "ws://", "wss://") {
		add("mqtt.broker", "%q needs a scheme: tcp://host:1883 or ssl://host:8883", c.MQTT.Broker)
	}
	c.validateMQTTTLS(add)
	if c.MQTT.Prefix == "" || strings.ContainsAny(c.MQTT.Prefix, "#+") {
		add("mqtt.prefix", "%q must be non-empty without # or +", c.MQTT.Prefix)
	}
	if d := time.Duration(c.MQTT.ReconnectMax); d < 100*time.Millisecond || d > time.Hour {
		add("mqtt.reconnect_max", "%v is outside 100ms..1h", d)
	}
	if _, _, err := net.SplitHostPort(c.MQTT.EmbeddedListen); err != nil {
		add("mqtt.embedded_listen", "%q is not host:port", c.MQTT.EmbeddedListen)
	}
	for i, s := range c.MQTT.Subscriptions {
		key := fmt.Sprintf("mqtt.subscriptions[%d]", i)
		if s.Topic == "" {
			add(key, "topic is required")
		}
		if *s.QoS != 0 && *s.QoS != 1 {
			add(key+".qos", "%d: use 0 or 1 (1 makes ingest lossless)", *s.QoS)
		}
		if s.Format == "" {
			add(key, "format is required (number, json, line, zigbee2mqtt, tasmota, shelly, esphome)")
		} else if _, err := payload.New(s.Config, c.Device); err != nil {
			add(key, "%v", err)
		}
	}
	if c.Sensors.Sim.Series < 1 || c.Sensors.Sim.Series > 100_000 {
		add("sensors.sim.series", "%d is outside 1..100000", c.Sensors.Sim.Series)
	}
	if time.Duration(c.Sensors.Sim.Interval) < time.Millisecond {
		add("sensors.sim.interval", "%v is below 1ms", time.Duration(c.Sensors.Sim.Interval))
	}
	if time.Duration(c.Sensors.Thermal.Interval) < 100*time.Millisecond {
		add("sensors.thermal.interval", "%v is below 100ms", time.Duration(c.Sensors.Thermal.Interval))
	}
	check := func(kind string, i int, v interface{ Validate() error }) {
		if err := v.Validate(); err != nil {
			add(fmt.Sprintf("sensors.%s[%d]", kind, i), "%v", err)
		}
	}
	for i := range c.Sensors.BME280 {
		check("bme280", i, &c.Sensors.BME280[i])
	}
	for i := range c.Sensors.DS18B20 {
		check("ds18b20", i, &c.Sensors.DS18B20[i])
	}
	for i := range c.Sensors.ADS1x15 {
		check("ads1x15", i, &c.Sensors.ADS1x15[i])
	}
	for i := range c.Sensors.Pulse {
		check("pulse", i, &c.Sensors.Pulse[i])
	}
	smallest := c.Aggregate.Windows[0]
	for _, w := range c.Aggregate.Windows {
		smallest = min(smallest, w)
	}
	for i, w := range c.Aggregate.Windows {
		if w <= 0 || (smallest > 0 && w%smallest != 0) {
			add(fmt.Sprintf("aggregate.windows[%d]", i), "%v must be positive and a multiple of the smallest window %v", time.Duration(w), time.Duration(smallest))
		}
	}
	if c.Aggregate.Lateness < 0 {
		add("aggregate.lateness", "must not be negative")
	}
	if q := c.Aggregate.Output.QoS; q != 0 && q != 1 {
		add("aggregate.mqtt_output.qos", "%d: use 0 or 1", q)
	}
	if strings.ContainsAny(c.Aggregate.Output.Prefix, "#+") {
		add("aggregate.mqtt_output.prefix", "%q must not contain # or +", c.Aggregate.Output.Prefix)
	}
	if k := c.Aggregate.Output.SeriesKey; !validJSONKey(k) {
		add("aggregate.mqtt_output.series_key", "%q: use letters, digits, _ or -", k)
	}
	if c.Aggregate.IdleAfter < 0 {
		add("aggregate.idle_after", "must not be negative")
	}
	for i, q := range c.Aggregate.Quantiles {
		if !(q > 0 && q < 1) {
			add(fmt.Sprintf("aggregate.quantiles[%d]", i), "%v is outside (0, 1)", q)
		}
	}
	if err := view.ValidVersion(c.Aggregate.View); err != nil {
		add("aggregate.view", "%q: a letter, then letters, digits, _ . or - (e.g. v2)", c.Aggregate.View)
	}
	c.validateAlerts(add)
	if c.Ship.URL != "" {
		if !hasScheme(c.Ship.URL, "http://", "https://") {
			add("ship.url", "%q needs a scheme: http://host:8086 or https://host:8086", c.Ship.URL)
		}
		if c.Ship.Bucket == "" {
			add("ship.bucket", "is required with ship.url (1.8: \"database/retention-policy\")")
		}
		if c.Ship.TokenFile == "" && c.lines["ship.token_file"] == 0 { // an empty one is reported below
			add("ship.token_file", "is required with ship.url: a file (or systemd credential) holding the token")
		}
	}
	if c.Ship.BatchSize < 1 || c.Ship.BatchSize > 100_000 {
		add("ship.batch_size", "%d is outside 1..100000", c.Ship.BatchSize)
	}
	if time.Duration(c.Ship.FlushInterval) < 10*time.Millisecond {
		add("ship.flush_interval", "%v is below 10ms", time.Duration(c.Ship.FlushInterval))
	}
	// The first retry waits up to 1s (the shipper's BackoffMin): a smaller
	// cap would mean nothing.
	if d := time.Duration(c.Ship.BackoffMax); d < time.Second || d > time.Hour {
		add("ship.backoff_max", "%v is outside 1s..1h", d)
	}
	// A secret key present but empty is a mistake, not "no secret": for
	// http.token_file it would leave the API open.
	for _, k := range []struct{ key, file string }{{"http.token_file", c.HTTP.TokenFile},
		{"mqtt.password_file", c.MQTT.PasswordFile}, {"ship.token_file", c.Ship.TokenFile}} {
		if k.file == "" && c.lines[k.key] > 0 {
			add(k.key, "is empty: name the file (or systemd credential) that holds the secret, or remove the key")
		}
	}
	return errors.Join(errs...)
}

func hasScheme(u string, schemes ...string) bool {
	for _, s := range schemes {
		if strings.HasPrefix(u, s) {
			return true
		}
	}
	return false
}

// Path is the file the config came from ("" for Default).
func (c *Config) Path() string { return c.path }

// Secret reads a secret from a file named by the config. A name without a
// slash is looked up among systemd credentials ($CREDENTIALS_DIRECTORY)
// first. The value is trimmed of surrounding whitespace and never logged
// nor put in an error. An empty name means no secret ("", nil); a file
// that holds nothing but whitespace is an error, not an empty secret (an
// empty http token would leave the API open).
func Secret(name string) (string, error) {
	if name == "" {
		return "", nil
	}
	path := secretPath(name)
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("config: read secret %s: %w", name, err)
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		where := name
		if path != name {
			where += " (" + path + ")"
		}
		return "", fmt.Errorf("config: secret %s is empty: write the secret into it, or remove the config key that names it", where)
	}
	return s, nil
}

// secretPath is where the secret file name is read from: a name without a
// slash is a systemd credential when $CREDENTIALS_DIRECTORY is set.
func secretPath(name string) string {
	if dir := os.Getenv("CREDENTIALS_DIRECTORY"); dir != "" && !strings.ContainsRune(name, '/') {
		return filepath.Join(dir, name)
	}
	return name
}

// Duration is a time.Duration written as "5s", "1m30s" in YAML.
type Duration = yamltype.Duration

// Size is a byte count written as "16MiB", "1GiB", "512KiB" or a number.
type Size int64

var sizeUnits = []struct {
	suffix string
	mult   int64
}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"B", 1}}

// UnmarshalYAML parses a size.
func (s *Size) UnmarshalYAML(n *yaml.Node) error {
	v := strings.TrimSpace(n.Value)
	mult := int64(1)
	for _, u := range sizeUnits {
		if rest, ok := strings.CutSuffix(v, u.suffix); ok {
			v, mult = strings.TrimSpace(rest), u.mult
			break
		}
	}
	x, err := strconv.ParseInt(v, 10, 64)
	if err != nil || x < 0 || x > (1<<62)/mult {
		return fmt.Errorf("line %d: %q is not a size (like 512KiB, 16MiB, 1GiB)", n.Line, n.Value)
	}
	*s = Size(x * mult)
	return nil
}

// MarshalYAML prints the size in the largest exact binary unit.
func (s Size) MarshalYAML() (any, error) { return s.String(), nil }

func (s Size) String() string {
	for i := 3; i >= 0; i-- { // TiB, GiB, MiB, KiB
		if u := sizeUnits[i]; int64(s) >= u.mult && int64(s)%u.mult == 0 {
			return fmt.Sprintf("%d%s", int64(s)/u.mult, u.suffix)
		}
	}
	return strconv.FormatInt(int64(s), 10)
}

// Redacted renders the effective config as YAML with secret paths kept
// (they are paths, not secrets) and nothing read from them.
func (c *Config) Redacted() string {
	out, err := yaml.Marshal(c)
	if err != nil {
		return fmt.Sprintf("config: %v", err)
	}
	return string(out)
}

// validateAlerts checks the rules, and that window rules name a window
// size and quantile the aggregator computes.
func (c *Config) validateAlerts(add func(key, format string, args ...any)) {
	if err := alerts.ValidateRules(c.Alerts.Rules); err != nil {
		var re *alerts.RuleError
		for _, e := range unwrapAll(err) {
			if errors.As(e, &re) && re.Index >= 0 {
				if re.Name != "" {
					add(fmt.Sprintf("alerts.rules[%d]", re.Index), "rule %q: %s", re.Name, re.Reason)
				} else {
					add(fmt.Sprintf("alerts.rules[%d]", re.Index), "%s", re.Reason)
				}
			} else {
				add("alerts.rules", "%v", e)
			}
		}
		return
	}
	for i, r := range c.Alerts.Rules {
		key := fmt.Sprintf("alerts.rules[%d]", i)
		if r.Window == 0 {
			continue
		}
		if !slices.Contains(c.Aggregate.Windows, Duration(r.Window)) {
			add(key+".window", "%v is not one of aggregate.windows", time.Duration(r.Window))
		}
		if q, ok := r.Quantile(); ok && !slices.Contains(c.Aggregate.Quantiles, q) {
			add(key+".aggregate", "%s: add %v to aggregate.quantiles", r.Aggregate, q)
		}
	}
	if c.Alerts.QueueLimit < 1 {
		add("alerts.queue_limit", "%d must be positive", c.Alerts.QueueLimit)
	}
	for key, topic := range map[string]string{"alerts.homeassistant.discovery_prefix": c.Alerts.HomeAssistant.DiscoveryPrefix,
		"alerts.homeassistant.status_topic": c.Alerts.HomeAssistant.StatusTopic} {
		if topic == "" || strings.ContainsAny(topic, "#+") {
			add(key, "%q must be non-empty without # or +", topic)
		}
	}
}

// unwrapAll flattens errors.Join trees.
func unwrapAll(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, unwrapAll(e)...)
		}
		return out
	}
	return []error{err}
}

func validJSONKey(k string) bool {
	if k == "" || len(k) > 64 {
		return false
	}
	for _, r := range k {
		if !(r == '_' || r == '-' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return false
		}
	}
	return true
}
