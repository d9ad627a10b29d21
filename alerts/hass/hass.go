// Package hass builds Home Assistant MQTT discovery messages for edged:
// every series becomes a sensor, every alert rule instance a binary_sensor
// of device class problem, all grouped under one Home Assistant device (the
// edge device) and available while edged's status topic says "online".
//
// The package is pure: it computes topics and retained JSON payloads and
// never touches the network; alerts/notify publishes them. Payloads are
// JSON objects with sorted keys, so the same input always produces the same
// bytes (re-publishing an unchanged config is a no-op for Home Assistant,
// and golden files stay stable).
//
// # Topics
//
//	<prefix>/<device>/status                              online / offline (LWT)
//	<prefix>/<device>/alerts/<rule>/<series>              an alert's current state
//	<discovery_prefix>/<component>/<node_id>/<object_id>/config
//
// A series name keeps its '/' as topic levels; the MQTT wildcards '+' and
// '#' (and NUL) cannot appear in a published topic and become '_'. Node and
// object ids, and unique ids, keep only [a-zA-Z0-9_-]: every other
// character, '/' included, becomes '_'. Two series that differ only in such
// characters ("a/b" and "a_b") therefore share an entity.
package hass

import (
	"encoding/json"
	"strings"
)

// DefaultDiscoveryPrefix is Home Assistant's default discovery prefix.
const DefaultDiscoveryPrefix = "homeassistant"

// DefaultPrefix is the first topic level of everything edged publishes
// unless configured otherwise.
const DefaultPrefix = "edged"

// Manufacturer is the device block's manufacturer.
const Manufacturer = "edged"

// Availability payloads on the status topic.
const (
	PayloadOnline  = "online"
	PayloadOffline = "offline"
)

// Device is the edge device every entity belongs to.
type Device struct {
	// ID is the edge device id (the device level of every topic). Required.
	ID string
	// Name is shown in Home Assistant; default ID.
	Name string
	// Model and SWVersion are shown in the device page when set.
	Model, SWVersion string
}

// SeriesInfo describes one sensor series.
type SeriesInfo struct {
	// Device is the device that took the readings; empty means the edge
	// device itself. A different one becomes part of the entity's ids.
	Device string
	// Series is the series name, e.g. "greenhouse/temperature". Required.
	Series string
	// Unit is the unit of measurement, e.g. "°C"; empty for none.
	Unit string
	// DeviceClass and StateClass override the classes inferred from Unit
	// and Series (see Classes); "none" omits the class.
	DeviceClass, StateClass string
	// StateTopic is where the series' values are published (for example
	// the aggregate output topic of one window size). Required.
	StateTopic string
	// ValueTemplate extracts the value from a payload on StateTopic, e.g.
	// "{{ value_json.mean }}"; empty when the payload is the bare number.
	ValueTemplate string
}

// AlertInfo describes one alert instance: one rule on one series.
type AlertInfo struct {
	// Device is the alert's device (the device level of its topic); empty
	// means the edge device.
	Device string
	// Rule and Series name the instance. Required.
	Rule, Series string
	// Name is the entity's name; default "<rule> <series>".
	Name string
}

// Message is one retained discovery publication. An empty Payload deletes
// the entity.
type Message struct {
	Topic   string
	Payload []byte
	Retain  bool
}

// StatusTopic is the device's availability topic, <prefix>/<device>/status.
func StatusTopic(prefix, device string) string {
	return orDefault(prefix, DefaultPrefix) + "/" + Level(device) + "/status"
}

// AlertTopic is where an alert's current state is published (retained):
// <prefix>/<device>/alerts/<rule>/<series>.
func AlertTopic(prefix, device, rule, series string) string {
	return orDefault(prefix, DefaultPrefix) + "/" + Level(device) + "/alerts/" + Level(rule) + "/" + Levels(series)
}

// Level makes s usable as one topic level: '/', '+', '#' and NUL become '_'.
func Level(s string) string { return topicSafe(s, "/+#\x00") }

// Levels makes s usable as one or more topic levels: it keeps '/' and
// replaces '+', '#' and NUL with '_'.
func Levels(s string) string { return topicSafe(s, "+#\x00") }

func topicSafe(s, bad string) string {
	if !strings.ContainsAny(s, bad) {
		return s
	}
	return strings.Map(func(r rune) rune {
		if strings.ContainsRune(bad, r) {
			return '_'
		}
		return r
	}, s)
}

// ID keeps [a-zA-Z0-9_-] of each part, replacing every other character
// with '_', and joins the parts with '_'.
func ID(parts ...string) string {
	var b strings.Builder
	for i, p := range parts {
		if i > 0 {
			b.WriteByte('_')
		}
		for _, r := range p {
			switch {
			case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_', r == '-':
				b.WriteRune(r)
			default:
				b.WriteByte('_')
			}
		}
	}
	return b.String()
}

// ConfigTopic is <discovery_prefix>/<component>/<node_id>/<object_id>/config.
func ConfigTopic(discoveryPrefix, component, nodeID, objectID string) string {
	return orDefault(discoveryPrefix, DefaultDiscoveryPrefix) + "/" + component + "/" + nodeID + "/" + objectID + "/config"
}

// Sensor returns the discovery config of a series as a sensor entity.
func Sensor(dev Device, prefix, discoveryPrefix string, s SeriesInfo) Message {
	id := ID("edged", dev.ID, s.Series)
	if s.Device != "" && s.Device != dev.ID {
		id = ID("edged", dev.ID, s.Device, s.Series)
	}
	dc, sc := Classes(s.Unit, s.Series)
	if s.DeviceClass != "" {
		dc = s.DeviceClass
	}
	if s.StateClass != "" {
		sc = s.StateClass
	}
	c := common(dev, prefix, id, s.Series)
	c["state_topic"] = s.StateTopic
	set(c, "device_class", dc)
	set(c, "state_class", sc)
	set(c, "unit_of_measurement", s.Unit)
	set(c, "value_template", s.ValueTemplate)
	return message(ConfigTopic(discoveryPrefix, "sensor", ID(dev.ID), id), c)
}

// FiringTemplate maps an alert payload's state to ON when firing, else OFF.
const FiringTemplate = "{{ 'ON' if value_json.state == 'firing' else 'OFF' }}"

// Alert returns the discovery config of an alert instance as a
// binary_sensor of device class problem: ON while the alert fires. The
// alert payload's fields (value, threshold, severity, labels, …) become
// the entity's attributes.
func Alert(dev Device, prefix, discoveryPrefix string, a AlertInfo) Message {
	device := orDefault(a.Device, dev.ID)
	id := ID("edged", dev.ID, "alert", a.Rule, a.Series)
	if device != dev.ID {
		id = ID("edged", dev.ID, device, "alert", a.Rule, a.Series)
	}
	topic := AlertTopic(prefix, device, a.Rule, a.Series)
	c := common(dev, prefix, id, orDefault(a.Name, a.Rule+" "+a.Series))
	c["device_class"] = "problem"
	c["state_topic"] = topic
	c["json_attributes_topic"] = topic
	c["value_template"] = FiringTemplate
	c["payload_on"] = "ON"
	c["payload_off"] = "OFF"
	return message(ConfigTopic(discoveryPrefix, "binary_sensor", ID(dev.ID), id), c)
}

// Remove returns the message that deletes the entity configured on
// configTopic: an empty retained payload.
func Remove(configTopic string) Message {
	return Message{Topic: configTopic, Payload: []byte{}, Retain: true}
}

func common(dev Device, prefix, id, name string) map[string]any {
	d := map[string]any{
		"identifiers":  []string{ID("edged", dev.ID)},
		"name":         orDefault(dev.Name, dev.ID),
		"manufacturer": Manufacturer,
	}
	set(d, "model", dev.Model)
	set(d, "sw_version", dev.SWVersion)
	origin := map[string]any{"name": "edged"}
	set(origin, "sw_version", dev.SWVersion)
	return map[string]any{
		"name":                  name,
		"unique_id":             id,
		"object_id":             id,
		"availability_topic":    StatusTopic(prefix, dev.ID),
		"payload_available":     PayloadOnline,
		"payload_not_available": PayloadOffline,
		"device":                d,
		"origin":                origin,
	}
}

func set(m map[string]any, k, v string) {
	if v != "" && v != "none" {
		m[k] = v
	}
}

func message(topic string, config map[string]any) Message {
	b, err := json.Marshal(config) // maps marshal with sorted keys
	if err != nil {
		panic("hass: " + err.Error()) // only strings, slices and maps of them
	}
	return Message{Topic: topic, Payload: b, Retain: true}
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
