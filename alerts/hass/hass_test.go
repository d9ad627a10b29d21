package hass_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/edged-io/edged/alerts/hass"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

var pi = hass.Device{ID: "pi-greenhouse", Name: "Greenhouse Pi", Model: "Raspberry Pi 4", SWVersion: "0.3.0"}

// golden compares m, rendered as indented JSON, with testdata/name.json.
func golden(t *testing.T, name string, m hass.Message) {
	t.Helper()
	var payload any = nil
	if len(m.Payload) > 0 {
		payload = json.RawMessage(m.Payload)
	}
	got, err := json.MarshalIndent(struct {
		Topic   string `json:"topic"`
		Retain  bool   `json:"retain"`
		Payload any    `json:"payload"`
	}{m.Topic, m.Retain, payload}, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	path := filepath.Join("testdata", name+".json")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (go test -update rewrites it):\ngot:\n%s\nwant:\n%s", path, got, want)
	}
}

func TestGolden(t *testing.T) {
	tests := []struct {
		name string
		msg  hass.Message
	}{
		{"sensor_temperature", hass.Sensor(pi, "edged", "", hass.SeriesInfo{
			Series: "greenhouse/temperature", Unit: "°C",
			StateTopic: "edged/pi-greenhouse/agg/1m0s/greenhouse/temperature", ValueTemplate: "{{ value_json.mean }}",
		})},
		{"sensor_humidity", hass.Sensor(pi, "edged", "homeassistant", hass.SeriesInfo{
			Series: "greenhouse/rel_humidity", Unit: "%", StateTopic: "edged/pi-greenhouse/agg/1m0s/greenhouse/rel_humidity",
		})},
		{"sensor_energy_other_device", hass.Sensor(pi, "site", "ha", hass.SeriesInfo{
			Device: "meter 7", Series: "mains/energy", Unit: "kWh", StateTopic: "site/meter 7/mains/energy",
		})},
		{"sensor_override_minimal_device", hass.Sensor(hass.Device{ID: "pi"}, "", "", hass.SeriesInfo{
			Series: "tank/level+raw", Unit: "%", DeviceClass: "none", StateClass: "total",
			StateTopic: "edged/pi/tank/level",
		})},
		{"alert", hass.Alert(pi, "edged", "", hass.AlertInfo{Rule: "too_hot", Series: "greenhouse/temperature"})},
		{"alert_named_other_device", hass.Alert(pi, "edged", "ha", hass.AlertInfo{
			Device: "esp32#2", Rule: "battery low", Series: "node/battery", Name: "Node battery low",
		})},
		{"remove", hass.Remove(hass.Alert(pi, "edged", "", hass.AlertInfo{Rule: "too_hot", Series: "greenhouse/temperature"}).Topic)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { golden(t, tt.name, tt.msg) })
	}
}

// TestIDsAndTopics checks the invariants the golden files show by example:
// sanitised ids, discovery topic layout, valid publish topics, retained
// messages and byte-stable payloads.
func TestIDsAndTopics(t *testing.T) {
	idRE := regexp.MustCompile(`^[a-zA-Z0-9_-]+$`)
	weird := "a b/c+d#e\x00f/°é"
	msgs := []hass.Message{
		hass.Sensor(hass.Device{ID: "dev/1"}, "p", "", hass.SeriesInfo{Series: weird, StateTopic: "x"}),
		hass.Alert(hass.Device{ID: "dev+1"}, "p", "", hass.AlertInfo{Rule: "r/1", Series: weird}),
	}
	for _, m := range msgs {
		if !m.Retain {
			t.Errorf("%s: not retained", m.Topic)
		}
		var c map[string]any
		if err := json.Unmarshal(m.Payload, &c); err != nil {
			t.Fatalf("%s: %v", m.Topic, err)
		}
		for _, k := range []string{"unique_id", "object_id"} {
			if s, _ := c[k].(string); !idRE.MatchString(s) {
				t.Errorf("%s: %s %q not sanitised", m.Topic, k, s)
			}
		}
		levels := strings.Split(m.Topic, "/")
		if len(levels) != 5 || levels[0] != "homeassistant" || levels[4] != "config" || levels[3] != c["object_id"] {
			t.Errorf("discovery topic %q: want homeassistant/<component>/<node>/<object_id>/config", m.Topic)
		}
		for _, k := range []string{"state_topic", "availability_topic", "json_attributes_topic"} {
			if s, _ := c[k].(string); strings.ContainsAny(s, "+#\x00") {
				t.Errorf("%s: %s %q is not a valid publish topic", m.Topic, k, s)
			}
		}
		again := hass.Sensor(hass.Device{ID: "dev/1"}, "p", "", hass.SeriesInfo{Series: weird, StateTopic: "x"})
		if m.Topic == again.Topic && !bytes.Equal(m.Payload, again.Payload) {
			t.Errorf("payload not deterministic")
		}
	}
	if got, want := hass.AlertTopic("edged", "pi", "too_hot", "greenhouse/air/temp"), "edged/pi/alerts/too_hot/greenhouse/air/temp"; got != want {
		t.Errorf("AlertTopic = %q, want %q", got, want)
	}
	if got, want := hass.AlertTopic("", "p/i", "r+", "s#"), "edged/p_i/alerts/r_/s_"; got != want {
		t.Errorf("AlertTopic = %q, want %q", got, want)
	}
	if got, want := hass.StatusTopic("", "pi"), "edged/pi/status"; got != want {
		t.Errorf("StatusTopic = %q, want %q", got, want)
	}
	if r := hass.Remove("homeassistant/sensor/pi/x/config"); len(r.Payload) != 0 || !r.Retain {
		t.Errorf("Remove = %+v, want an empty retained payload", r)
	}
}

func TestClasses(t *testing.T) {
	tests := []struct {
		unit, series, class, state string
	}{
		{"°C", "greenhouse/temperature", "temperature", "measurement"},
		{"°F", "x", "temperature", "measurement"},
		{"K", "kiln", "temperature", "measurement"},
		{"C", "x", "", "measurement"}, // not a unit Home Assistant knows for temperature
		{"%", "greenhouse/humidity", "humidity", "measurement"},
		{"%", "air/rh", "humidity", "measurement"},
		{"%", "bed/soil", "moisture", "measurement"},
		{"%", "node/battery", "battery", "measurement"},
		{"%", "valve/opening", "", "measurement"},
		{"hPa", "air/pressure", "pressure", "measurement"},
		{"Pa", "x", "pressure", "measurement"},
		{"bar", "x", "pressure", "measurement"},
		{"V", "x", "voltage", "measurement"},
		{"A", "x", "current", "measurement"},
		{"W", "x", "power", "measurement"},
		{"kWh", "mains/energy", "energy", "total_increasing"},
		{"Wh", "x", "energy", "total_increasing"},
		{"lx", "x", "illuminance", "measurement"},
		{"ppm", "room/co2", "carbon_dioxide", "measurement"},
		{"ppm", "garage/co", "carbon_monoxide", "measurement"},
		{"ppm", "room/voc", "volatile_organic_compounds_parts", "measurement"},
		{"ppm", "tank/chlorine", "", "measurement"},
		{"µg/m³", "air/pm2.5", "pm25", "measurement"},
		{"µg/m³", "air/pm10", "pm10", "measurement"},
		{"dB", "wifi/rssi", "signal_strength", "measurement"},
		{"dB", "shop/noise", "sound_pressure", "measurement"},
		{"m³", "house/gas", "gas", "total_increasing"},
		{"", "x", "", "measurement"},
		{"furlongs", "x", "", "measurement"},
	}
	for _, tt := range tests {
		dc, sc := hass.Classes(tt.unit, tt.series)
		if dc != tt.class || sc != tt.state {
			t.Errorf("Classes(%q, %q) = %q, %q; want %q, %q", tt.unit, tt.series, dc, sc, tt.class, tt.state)
		}
	}
}
