package payload

import (
	"bytes"
	"encoding/json"
	"io"
	"testing"

	"github.com/edged-io/edged"
)

// Realistic messages, one per decoder.
var benchCases = []struct {
	name  string
	c     Config
	topic string
	msg   string
}{
	{"number", Config{}, "greenhouse/temperature", "21.5"},
	{"json-fields", Config{Format: FormatJSON, Series: "{2}/{field}",
		Fields: []Field{{Path: "env.temp", Series: "temperature", Unit: "°C"}, {Path: "env.hum", Series: "humidity", Unit: "%"}},
		Time:   TimeSpec{Path: "ts", Format: TimeUnixMS}},
		"site/greenhouse/state", `{"ts":1700000000123,"env":{"temp":21.5,"hum":45.2},"fw":"1.2.3","rssi":-61}`},
	{"json-leaves", Config{Format: FormatJSON},
		"site/greenhouse/state", `{"ts":1700000000123,"env":{"temp":21.5,"hum":45.2},"fw":"1.2.3","rssi":-61}`},
	{"line", Config{Format: FormatLine}, "telegraf",
		"weather,location=us-midwest,station=a1 temperature=82.1,humidity=71i,ok=true 1700000000100400200"},
	{"zigbee2mqtt", Config{Format: FormatZigbee2MQTT}, "zigbee2mqtt/living_room_aqara", z2mAqara},
	{"tasmota", Config{Format: FormatTasmota}, "tele/kitchen/SENSOR", tasmotaBME280},
	{"shelly-gen1", Config{Format: FormatShelly}, "shellies/shellyht-6FEA55/sensor/temperature", "21.50"},
	{"shelly-gen2", Config{Format: FormatShelly}, "shellyplus1pm-441793a3b4c8/status/switch:0", shellySwitch},
	{"esphome", Config{Format: FormatESPHome}, "livingroom/sensor/temperature/state", "21.4"},
}

const (
	z2mAqara = `{"battery":97,"humidity":48.37,"linkquality":132,"power_outage_count":3,"pressure":1008.4,` +
		`"temperature":21.89,"voltage":2985,"device_temperature":23,"update":{"installed_version":-1,"latest_version":-1,"state":null},"update_available":null}`
	tasmotaBME280 = `{"Time":"2024-01-01T12:00:00","BME280":{"Temperature":21.3,"Humidity":45.1,"DewPoint":8.9,"Pressure":1013.2},"PressureUnit":"hPa","TempUnit":"C"}`
	shellySwitch  = `{"id":0,"source":"init","output":true,"apower":12.3,"voltage":231.4,"freq":50.0,"current":0.065,"pf":0.82,` +
		`"aenergy":{"total":1234.567,"by_minute":[190.2,195.3,180.9],"minute_ts":1700000000},"temperature":{"tC":45.2,"tF":113.4}}`
)

// BenchmarkDecode measures each decoder on one realistic message, reusing
// dst as the MQTT source does. The budget: 40k msgs/s on 2 cores at most
// 15 % over a bare client is about 7 µs of CPU per message for the whole
// ingest path; decoding should be a small part of it.
func BenchmarkDecode(b *testing.B) {
	for _, bc := range benchCases {
		b.Run(bc.name, func(b *testing.B) {
			d, err := New(bc.c, "pi")
			if err != nil {
				b.Fatal(err)
			}
			msg := []byte(bc.msg)
			var dst []edged.Reading
			if dst, err = d.Decode(dst[:0], bc.topic, msg, 1700000000e9); err != nil || len(dst) == 0 {
				b.Fatalf("%d readings, %v", len(dst), err)
			}
			b.SetBytes(int64(len(msg)))
			b.ReportAllocs()
			for b.Loop() {
				dst, _ = d.Decode(dst[:0], bc.topic, msg, 1700000000e9)
			}
		})
	}
}

// BenchmarkJSONReference measures encoding/json on the Zigbee2MQTT
// message, the alternatives the scanner replaced: Unmarshal into
// map[string]any, and a streaming Decoder.Token walk.
func BenchmarkJSONReference(b *testing.B) {
	msg := []byte(z2mAqara)
	b.Run("scanner", func(b *testing.B) {
		var it jsonIter
		b.SetBytes(int64(len(msg)))
		b.ReportAllocs()
		for b.Loop() {
			it.reset(msg)
			for it.next() {
			}
		}
	})
	b.Run("unmarshal-map", func(b *testing.B) {
		b.SetBytes(int64(len(msg)))
		b.ReportAllocs()
		for b.Loop() {
			var m map[string]any
			if err := json.Unmarshal(msg, &m); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decoder-token", func(b *testing.B) {
		b.SetBytes(int64(len(msg)))
		b.ReportAllocs()
		r := bytes.NewReader(nil)
		for b.Loop() {
			r.Reset(msg)
			dec := json.NewDecoder(r)
			dec.UseNumber()
			for {
				if _, err := dec.Token(); err == io.EOF {
					break
				} else if err != nil {
					b.Fatal(err)
				}
			}
		}
	})
}
