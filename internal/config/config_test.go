package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestDefaults(t *testing.T) {
	c := Default()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if !c.Sensors.Sim.Enabled || !c.Sensors.Thermal.Enabled || c.MQTT.Broker != "" || c.DataDir != "./data" ||
		c.HTTP.Listen != "127.0.0.1:8080" || c.WAL.Fsync != "interval" || len(c.Aggregate.Windows) != 3 {
		t.Fatalf("defaults: %+v", c)
	}
}

// TestEveryExampleConfigParses: each edged file in configs/ is a valid
// config (reconcile*.yaml belong to edged-reconcile, which tests them).
func TestEveryExampleConfigParses(t *testing.T) {
	files, _ := filepath.Glob("../../configs/*.yaml")
	if len(files) == 0 {
		t.Fatal("no example configs found")
	}
	for _, f := range files {
		if strings.HasPrefix(filepath.Base(f), "reconcile") {
			continue
		}
		c, err := Load(f)
		if err != nil {
			t.Errorf("%v", err)
			continue
		}
		if c.Device == "" || c.Redacted() == "" {
			t.Errorf("%s: empty device or rendering", f)
		}
	}
}

func TestParsesValues(t *testing.T) {
	c, err := Parse("x.yaml", []byte(`
device: pi-7
wal: {fsync: always, segment_size: 1MiB, max_bytes: 64MiB, max_age: 0s}
aggregate: {windows: [5s, 30s], lateness: 2s}
mqtt:
  broker: tcp://10.0.0.2:1883
  subscriptions:
    - {topic: "a/#", format: json, qos: 0}
`))
	if err != nil {
		t.Fatal(err)
	}
	if c.WAL.SegmentSize != 1<<20 || c.WAL.MaxBytes != 64<<20 || c.WAL.MaxAge != 0 || c.WAL.Fsync != "always" {
		t.Fatalf("wal: %+v", c.WAL)
	}
	if time.Duration(c.Aggregate.Windows[1]) != 30*time.Second || *c.MQTT.Subscriptions[0].QoS != 0 || c.MQTT.ClientID != "edged-pi-7" {
		t.Fatalf("parsed: %+v", c)
	}
	if !strings.Contains(c.Redacted(), "segment_size: 1MiB") {
		t.Fatalf("rendering: %s", c.Redacted())
	}
}

// TestBadConfigs: every mistake is reported with file:line and what to do.
func TestBadConfigs(t *testing.T) {
	cases := []struct{ name, yaml, want string }{
		{"unknown key", "devise: x\n", "x.yaml:1: field devise not found"},
		{"bad duration", "wal:\n  fsync_interval: soon\n", `x.yaml:2: "soon" is not a duration`},
		{"bad size", "wal:\n  segment_size: big\n", `x.yaml:2: "big" is not a size`},
		{"bad fsync", "wal:\n  fsync: sometimes\n", `x.yaml:2: wal.fsync: "sometimes" is not one of always, interval, never`},
		{"segment too small", "wal:\n  segment_size: 1KiB\n", "x.yaml:2: wal.segment_size"},
		{"quota under 4 segments", "wal:\n  max_bytes: 32MiB\n", "x.yaml:2: wal.max_bytes"},
		{"public http without token", "http:\n  listen: 0.0.0.0:8080\n", "set http.token_file"},
		{"http not host:port", "http:\n  listen: nowhere\n", "x.yaml:2: http.listen"},
		{"broker without scheme", "mqtt:\n  broker: 10.0.0.1:1883\n", "needs a scheme"},
		{"subscription without topic", "mqtt:\n  subscriptions:\n    - format: json\n", "x.yaml:3: mqtt.subscriptions[0]: topic is required"},
		{"subscription without format", "mqtt:\n  subscriptions:\n    - topic: a/b\n", "format is required"},
		{"qos 2", "mqtt:\n  subscriptions:\n    - {topic: a, format: json, qos: 2}\n", "use 0 or 1"},
		{"windows not multiples", "aggregate:\n  windows: [10s, 15s]\n", "aggregate.windows[1]: 15s must be positive and a multiple"},
		{"negative window", "aggregate:\n  windows: [-10s]\n", "aggregate.windows[0]"},
		{"quantile 1", "aggregate:\n  quantiles: [0.5, 1]\n", "aggregate.quantiles[1]: 1 is outside (0, 1)"},
		{"device with slash", "device: a/b\n", "x.yaml:1: device"},
		{"log level", "log_level: loud\n", "x.yaml:1: log_level"},
		{"sim series", "sensors:\n  sim:\n    series: -3\n", "x.yaml:3: sensors.sim.series"},
		{"thermal too fast", "sensors:\n  thermal:\n    interval: 1ms\n", "sensors.thermal.interval"},
		{"not yaml", "wal: [\n", "x.yaml:"},
		{"wrong type", "sensors:\n  sim:\n    series: many\n", "x.yaml:3:"},
		{"fsync interval too long", "wal:\n  fsync_interval: 1h\n", "wal.fsync_interval"},
		{"ship without scheme", "ship:\n  url: central:8086\n  bucket: b\n  token_file: t\n", "x.yaml:2: ship.url"},
		{"ship without bucket", "ship:\n  url: http://central:8086\n  token_file: t\n", "ship.bucket: is required"},
		{"ship without token", "ship:\n  url: http://central:8086\n  bucket: b\n", "ship.token_file: is required"},
		{"ship batch", "ship:\n  batch_size: 200000\n", "x.yaml:2: ship.batch_size"},
		{"rule without kind", "alerts:\n  rules:\n    - {name: hot, series: 't/*'}\n", `x.yaml:3: alerts.rules[0]: rule "hot":`},
		{"rule window not computed", "alerts:\n  rules:\n    - {name: hot, series: t, window: 5m, aggregate: mean, above: 1}\n", "x.yaml:3: alerts.rules[0].window: 5m0s is not one of aggregate.windows"},
		{"rule quantile not computed", "alerts:\n  rules:\n    - {name: hot, series: t, window: 1m, aggregate: p90, above: 1}\n", "add 0.9 to aggregate.quantiles"},
		{"rule bad duration", "alerts:\n  rules:\n    - name: hot\n      series: t\n      for: soon\n", `x.yaml:5: "soon" is not a duration`},
		{"prefix wildcard", "mqtt:\n  prefix: a/#\n", "x.yaml:2: mqtt.prefix"},
		{"reconnect_max zero", "mqtt:\n  reconnect_max: 0s\n", "x.yaml:2: mqtt.reconnect_max: 0s is outside 100ms..1h"},
		{"reconnect_max negative", "mqtt:\n  reconnect_max: -5s\n", "x.yaml:2: mqtt.reconnect_max: -5s is outside"},
		{"reconnect_max too long", "mqtt:\n  reconnect_max: 2h\n", "x.yaml:2: mqtt.reconnect_max: 2h0m0s is outside"},
		{"reconnect_max not a duration", "mqtt:\n  reconnect_max: 10\n", `x.yaml:2: "10" is not a duration`},
		{"backoff_max zero", "ship:\n  backoff_max: 0s\n", "x.yaml:2: ship.backoff_max: 0s is outside 1s..1h"},
		{"backoff_max below the first retry", "ship:\n  backoff_max: 500ms\n", "x.yaml:2: ship.backoff_max: 500ms is outside"},
		{"backoff_max too long", "ship:\n  backoff_max: 24h\n", "x.yaml:2: ship.backoff_max: 24h0m0s is outside"},
		{"empty http token file", "http:\n  token_file: \"\"\n", "x.yaml:2: http.token_file: is empty"},
		{"empty mqtt password file", "mqtt:\n  password_file: \"\"\n", "x.yaml:2: mqtt.password_file: is empty"},
		{"empty ship token file", "ship:\n  url: http://central:8086\n  bucket: b\n  token_file:\n", "x.yaml:4: ship.token_file: is empty"},
	}
	for _, tc := range cases {
		_, err := Parse("x.yaml", []byte(tc.yaml))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want it to contain %q", tc.name, err, tc.want)
		}
	}
}

// TestBackoffCaps: mqtt.reconnect_max and ship.backoff_max default to 10s
// and 30s, take any value within their bounds, and show in --print.
func TestBackoffCaps(t *testing.T) {
	c, err := Parse("x.yaml", []byte("device: pi\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := time.Duration(c.MQTT.ReconnectMax); got != 10*time.Second {
		t.Errorf("mqtt.reconnect_max default %v, want 10s", got)
	}
	if got := time.Duration(c.Ship.BackoffMax); got != 30*time.Second {
		t.Errorf("ship.backoff_max default %v, want 30s", got)
	}
	if d := Default(); time.Duration(d.MQTT.ReconnectMax) != 10*time.Second || time.Duration(d.Ship.BackoffMax) != 30*time.Second {
		t.Errorf("embedded defaults: reconnect_max %v, backoff_max %v", time.Duration(d.MQTT.ReconnectMax), time.Duration(d.Ship.BackoffMax))
	}
	c, err = Parse("x.yaml", []byte("mqtt: {reconnect_max: 250ms}\nship: {backoff_max: 1h}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if time.Duration(c.MQTT.ReconnectMax) != 250*time.Millisecond || time.Duration(c.Ship.BackoffMax) != time.Hour {
		t.Errorf("parsed reconnect_max %v, backoff_max %v", time.Duration(c.MQTT.ReconnectMax), time.Duration(c.Ship.BackoffMax))
	}
	if r := c.Redacted(); !strings.Contains(r, "reconnect_max: 250ms") || !strings.Contains(r, "backoff_max: 1h0m0s") {
		t.Errorf("rendering lacks the caps:\n%s", r)
	}
	// What --print shows parses again: unset secret keys are left out, not
	// printed empty (which would now be refused).
	if _, err := Parse("printed.yaml", []byte(c.Redacted())); err != nil {
		t.Errorf("the rendering does not parse: %v", err)
	}
}

func TestSecretFromFileOrCredential(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "pw"), []byte("s3cret\n"), 0o600)
	if s, err := Secret(filepath.Join(dir, "pw")); err != nil || s != "s3cret" {
		t.Fatalf("file: %q %v", s, err)
	}
	t.Setenv("CREDENTIALS_DIRECTORY", dir)
	if s, err := Secret("pw"); err != nil || s != "s3cret" {
		t.Fatalf("credential: %q %v", s, err)
	}
	if _, err := Secret("missing"); err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("missing secret: %v", err)
	}
	if s, err := Secret(""); err != nil || s != "" {
		t.Fatalf("no secret configured: %q %v", s, err)
	}
}

// TestEmptySecretIsAnError: a secret file that holds nothing (or only
// whitespace) is refused with its name, never read as an empty secret.
func TestEmptySecretIsAnError(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{"empty": "", "blank": " \n\t\n"} {
		os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600)
		s, err := Secret(filepath.Join(dir, name))
		if err == nil || s != "" {
			t.Fatalf("%s file: %q %v, want an error", name, s, err)
		}
		if want := filepath.Join(dir, name) + " is empty"; !strings.Contains(err.Error(), want) {
			t.Errorf("%s file: %v, want it to say %q", name, err, want)
		}
		t.Setenv("CREDENTIALS_DIRECTORY", dir)
		if _, err := Secret(name); err == nil || !strings.Contains(err.Error(), "secret "+name+" ("+filepath.Join(dir, name)+") is empty") {
			t.Errorf("%s credential: %v", name, err)
		}
		t.Setenv("CREDENTIALS_DIRECTORY", "")
	}
}

func FuzzParse(f *testing.F) {
	b, _ := os.ReadFile("../../configs/edged.yaml")
	f.Add(b)
	f.Add([]byte("wal: {fsync: always}\n"))
	f.Add([]byte("aggregate: {windows: [0s]}\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Parse("f.yaml", b)
		if err == nil && c.Validate() != nil {
			t.Fatal("Parse accepted a config Validate rejects")
		}
	})
}
