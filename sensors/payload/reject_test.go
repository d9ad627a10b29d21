package payload

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// malformed: every case yields exactly one error of the given reason, and
// the listed readings (the good part of a partly good message).
var malformed = []decodeCase{
	{name: "number/empty", topic: "t", payload: "", reason: ReasonEmpty},
	{name: "number/blank", topic: "t", payload: " \n\t", reason: ReasonEmpty},
	{name: "number/nan", topic: "t", payload: "NaN", reason: ReasonNonFinite},
	{name: "number/inf", topic: "t", payload: "-inf", reason: ReasonNonFinite},
	{name: "number/unit-suffix", topic: "t", payload: "21.5°C", reason: ReasonNotANumber},
	{name: "number/overflow", topic: "t", payload: "1e999", reason: ReasonNonFinite},
	{name: "number/hex", topic: "t", payload: "0x10", reason: ReasonNotANumber},
	{name: "number/two-numbers", topic: "t", payload: "1 2", reason: ReasonNotANumber},
	{name: "number/json", topic: "t", payload: `{"v":1}`, reason: ReasonNotANumber},
	{name: "number/too-large", c: Config{MaxPayload: 16}, topic: "t", payload: strings.Repeat("1", 17), reason: ReasonTooLarge},
	{name: "number/bad-topic", c: Config{Series: "{3}"}, topic: "a/b", payload: "1", reason: ReasonBadTopic},
	{name: "number/bad-name", c: Config{Series: "{2}"}, topic: "a//b", payload: "1", reason: ReasonBadName},

	{name: "json/truncated", c: Config{Format: FormatJSON}, topic: "j", payload: `{"temp":21.5,"hum":4`, reason: ReasonInvalidJSON},
	{name: "json/missing-value", c: Config{Format: FormatJSON}, topic: "j", payload: `{"temp":}`, reason: ReasonInvalidJSON},
	{name: "json/single-quotes", c: Config{Format: FormatJSON}, topic: "j", payload: `{'temp':1}`, reason: ReasonInvalidJSON},
	{name: "json/trailing-comma", c: Config{Format: FormatJSON}, topic: "j", payload: `{"temp":1,}`, reason: ReasonInvalidJSON},
	{name: "json/nan-literal", c: Config{Format: FormatJSON}, topic: "j", payload: `{"temp":NaN}`, reason: ReasonInvalidJSON},
	{name: "json/trailing-data", c: Config{Format: FormatJSON}, topic: "j", payload: `{"temp":1} {"temp":2}`, reason: ReasonInvalidJSON},
	{name: "json/too-deep", c: Config{Format: FormatJSON}, topic: "j", payload: strings.Repeat("[", 100) + strings.Repeat("]", 100), reason: ReasonInvalidJSON},
	{name: "json/missing-field", c: Config{Format: FormatJSON, Fields: []Field{{Path: "temp"}, {Path: "hum"}}}, topic: "j",
		payload: `{"temp":21.5}`, want: []string{"j/temp=21.5[] @ingest"}, reason: ReasonMissingField},
	{name: "json/string-field", c: Config{Format: FormatJSON, Fields: []Field{{Path: "temp"}}}, topic: "j", payload: `{"temp":"21.5"}`, reason: ReasonNotNumeric},
	{name: "json/string-not-number", c: Config{Format: FormatJSON, Strings: true, Fields: []Field{{Path: "temp"}}}, topic: "j", payload: `{"temp":"warm"}`, reason: ReasonNotNumeric},
	{name: "json/string-nan", c: Config{Format: FormatJSON, Strings: true, Fields: []Field{{Path: "temp"}}}, topic: "j", payload: `{"temp":"nan"}`, reason: ReasonNonFinite},
	{name: "json/bool-field", c: Config{Format: FormatJSON, Fields: []Field{{Path: "on"}, {Path: "t"}}}, topic: "j",
		payload: `{"on":true,"t":3}`, want: []string{"j/t=3[] @ingest"}, reason: ReasonNotNumeric},
	{name: "json/null-field", c: Config{Format: FormatJSON, Fields: []Field{{Path: "t"}}}, topic: "j", payload: `{"t":null}`, reason: ReasonNotNumeric},
	{name: "json/object-at-field", c: Config{Format: FormatJSON, Fields: []Field{{Path: "t"}}}, topic: "j", payload: `{"t":{"v":1}}`, reason: ReasonMissingField},
	{name: "json/huge-number", c: Config{Format: FormatJSON}, topic: "j", payload: `{"a":1e400,"b":2}`, want: []string{"j/b=2[] @ingest"}, reason: ReasonNonFinite},
	{name: "json/bad-rfc3339", c: Config{Format: FormatJSON, Fields: []Field{{Path: "v"}}, Time: TimeSpec{Path: "t", Format: TimeRFC3339}}, topic: "j",
		payload: `{"t":"yesterday","v":1}`, want: []string{"j/v=1[] @ingest"}, reason: ReasonBadTimestamp},
	{name: "json/rfc3339-without-zone", c: Config{Format: FormatJSON, Fields: []Field{{Path: "v"}}, Time: TimeSpec{Path: "t", Format: TimeRFC3339}}, topic: "j",
		payload: `{"t":"2024-05-01T12:00:00","v":1}`, want: []string{"j/v=1[] @ingest"}, reason: ReasonBadTimestamp},
	{name: "json/unix-overflow", c: Config{Format: FormatJSON, Fields: []Field{{Path: "v"}}, Time: TimeSpec{Path: "t", Format: TimeUnixS}}, topic: "j",
		payload: `{"t":1e30,"v":1}`, want: []string{"j/v=1[] @ingest"}, reason: ReasonBadTimestamp},
	{name: "json/no-numbers", c: Config{Format: FormatJSON}, topic: "j", payload: `{"state":"ON","fw":"1.0"}`, reason: ReasonNoValues},
	{name: "json/empty-array", c: Config{Format: FormatJSON}, topic: "j", payload: `[]`, reason: ReasonNoValues},
	{name: "json/control-char-key", c: Config{Format: FormatJSON}, topic: "j", payload: `{"a\u0001":1,"b":2}`, want: []string{"j/b=2[] @ingest"}, reason: ReasonBadName},
	{name: "json/bad-topic-fields", c: Config{Format: FormatJSON, Series: "{3}/{field}", Fields: []Field{{Path: "v"}, {Path: "w"}}}, topic: "a/b",
		payload: `{"v":1,"w":2}`, reason: ReasonBadTopic},
	{name: "json/bad-topic", c: Config{Format: FormatJSON, Series: "{4}/{field}"}, topic: "a/b", payload: `{"v":1}`, reason: ReasonBadTopic},

	{name: "line/no-fields", c: Config{Format: FormatLine}, topic: "l", payload: `weather temperature`, reason: ReasonLineSyntax},
	{name: "line/measurement-only", c: Config{Format: FormatLine}, topic: "l", payload: `weather`, reason: ReasonLineSyntax},
	{name: "line/bad-tag", c: Config{Format: FormatLine}, topic: "l", payload: `weather,location temp=1`, reason: ReasonLineSyntax},
	{name: "line/bad-value", c: Config{Format: FormatLine}, topic: "l", payload: `weather temp=warm`, reason: ReasonLineSyntax},
	{name: "line/int-overflow", c: Config{Format: FormatLine}, topic: "l", payload: `weather n=99999999999999999999i`, reason: ReasonLineSyntax},
	{name: "line/unterminated-string", c: Config{Format: FormatLine}, topic: "l", payload: `weather s="open`, reason: ReasonLineSyntax},
	{name: "line/bad-timestamp", c: Config{Format: FormatLine}, topic: "l", payload: `weather temp=1 12abc`, reason: ReasonLineSyntax},
	{name: "line/timestamp-overflow", c: Config{Format: FormatLine, Series: "{field}"}, topic: "l", payload: `weather temp=1 99999999999999999999`,
		want: []string{"temp=1[] @ingest"}, reason: ReasonBadTimestamp},
	{name: "line/seconds-overflow", c: Config{Format: FormatLine, Series: "{field}", Time: TimeSpec{Format: TimeUnixS}}, topic: "l",
		payload: `weather temp=1 1714564800000`, want: []string{"temp=1[] @ingest"}, reason: ReasonBadTimestamp},
	{name: "line/only-strings", c: Config{Format: FormatLine}, topic: "l", payload: `log msg="hello"`, reason: ReasonNoValues},
	{name: "line/float-overflow", c: Config{Format: FormatLine, Series: "{field}"}, topic: "l", payload: `m a=1e999,b=2`,
		want: []string{"b=2[] @ingest"}, reason: ReasonNonFinite},
	{name: "line/missing-tag", c: Config{Format: FormatLine, Series: "{tag:host}/{field}"}, topic: "l", payload: `cpu,region=eu load=0.5`, reason: ReasonMissingField},
	{name: "line/one-bad-line", c: Config{Format: FormatLine, Series: "{field}"}, topic: "l",
		payload: "m a=1\nm b=oops\nm c=3\nm d=\n", want: []string{"a=1[] @ingest", "c=3[] @ingest"}, reason: ReasonLineSyntax},

	{name: "z2m/truncated", c: Config{Format: FormatZigbee2MQTT}, topic: "zigbee2mqtt/th", payload: `{"temperature":21.5,"humidity":4`, reason: ReasonInvalidJSON},
	{name: "z2m/not-object", c: Config{Format: FormatZigbee2MQTT}, topic: "zigbee2mqtt/th", payload: `online`, reason: ReasonInvalidJSON},
	{name: "z2m/empty", c: Config{Format: FormatZigbee2MQTT}, topic: "zigbee2mqtt/th", payload: ``, reason: ReasonEmpty},
	{name: "z2m/too-large", c: Config{Format: FormatZigbee2MQTT}, topic: "zigbee2mqtt/th",
		payload: `{"a":"` + strings.Repeat("x", DefaultMaxPayload) + `"}`, reason: ReasonTooLarge},
	{name: "z2m/bad-last-seen", c: Config{Format: FormatZigbee2MQTT}, topic: "zigbee2mqtt/th", payload: `{"temperature":21.5,"last_seen":"now"}`,
		want: []string{"th/temperature=21.5[°C] @ingest"}, reason: ReasonBadTimestamp},
	{name: "tasmota/truncated", c: Config{Format: FormatTasmota}, topic: "tele/k/SENSOR", payload: `{"Time":"2024-05-01T12:00:00","BME280":{"Temperature":}}`, reason: ReasonInvalidJSON},
	{name: "tasmota/bad-time", c: Config{Format: FormatTasmota, Timezone: "UTC"}, topic: "tele/k/SENSOR", payload: `{"Time":"2024-13-45T99:00:00","SI7021":{"Humidity":50}}`,
		want: []string{"k/SI7021/Humidity=50[%] @ingest"}, reason: ReasonBadTimestamp},
	{name: "shelly/gen1-empty", c: Config{Format: FormatShelly}, topic: "shellies/ht/sensor/temperature", payload: ``, reason: ReasonEmpty},
	{name: "shelly/gen1-text", c: Config{Format: FormatShelly}, topic: "shellies/ht/sensor/temperature", payload: `warm`, reason: ReasonNotANumber},
	{name: "shelly/gen2-not-json", c: Config{Format: FormatShelly}, topic: "sh/status/switch:0", payload: `on`, reason: ReasonInvalidJSON},
	{name: "shelly/gen2-truncated", c: Config{Format: FormatShelly}, topic: "sh/status/switch:0", payload: `{"id":0,"apower":12.`, reason: ReasonInvalidJSON},
	{name: "esphome/nan", c: Config{Format: FormatESPHome}, topic: "node/sensor/temperature/state", payload: `nan`, reason: ReasonNonFinite},
	{name: "esphome/binary-garbage", c: Config{Format: FormatESPHome, Booleans: true}, topic: "node/binary_sensor/door/state", payload: `maybe`, reason: ReasonNotNumeric},
}

func TestMalformed(t *testing.T) {
	if len(malformed) < 20 {
		t.Fatalf("only %d malformed cases", len(malformed))
	}
	seen := map[Reason]bool{}
	for _, tc := range malformed {
		if tc.reason == "" {
			t.Fatalf("%s: no reason", tc.name)
		}
		seen[tc.reason] = true
	}
	for _, r := range Reasons() {
		if !seen[r] {
			t.Errorf("no malformed case for reason %q", r)
		}
	}
	runDecodeCases(t, malformed)
}

// TestMixedStream interleaves valid and malformed messages through the
// decoders, as a subscription would see them: every valid reading comes
// out, every malformed message yields exactly one error of its reason,
// and nothing stops the stream.
func TestMixedStream(t *testing.T) {
	var stream []decodeCase
	valid := append(append([]decodeCase(nil), formatCases...), presetCases...)
	for i := 0; i < len(valid) || i < len(malformed); i++ {
		if i < len(valid) {
			stream = append(stream, valid[i])
		}
		if i < len(malformed) {
			stream = append(stream, malformed[i])
		}
	}
	decoders := map[string]Decoder{}
	var dst []string
	wantReadings, wantErrs := 0, map[Reason]int{}
	gotErrs := map[Reason]int{}
	for round := 0; round < 3; round++ { // decoders are reused across messages
		for _, tc := range stream {
			key := fmt.Sprintf("%+v", tc.c)
			d := decoders[key]
			if d == nil {
				d = mustNew(t, tc.c)
				decoders[key] = d
			}
			rs, err := d.Decode(nil, tc.topic, []byte(tc.payload), ingest)
			dst = append(dst, showAll(rs)...)
			wantReadings += len(tc.want)
			if got := strings.Join(showAll(rs), "|"); got != strings.Join(tc.want, "|") {
				t.Errorf("%s: readings %s, want %s", tc.name, got, strings.Join(tc.want, "|"))
			}
			if tc.reason != "" {
				wantErrs[tc.reason]++
			}
			if err != nil {
				var pe *Error
				if !errors.As(err, &pe) || pe.Reason != tc.reason {
					t.Errorf("%s: error %v, want reason %q", tc.name, err, tc.reason)
					continue
				}
				gotErrs[pe.Reason]++
			} else if tc.reason != "" {
				t.Errorf("%s: no error, want %q", tc.name, tc.reason)
			}
		}
	}
	if len(dst) != wantReadings {
		t.Errorf("%d readings, want %d", len(dst), wantReadings)
	}
	if fmt.Sprint(gotErrs) != fmt.Sprint(wantErrs) {
		t.Errorf("errors per reason %v, want %v", gotErrs, wantErrs)
	}
}

func TestErrorMessage(t *testing.T) {
	d := mustNew(t, Config{Format: FormatJSON, Fields: []Field{{Path: "a"}, {Path: "b"}, {Path: "c"}}})
	_, err := d.Decode(nil, "greenhouse/state", []byte(`{"a":"x"}`), ingest)
	want := `payload: topic "greenhouse/state": not_numeric: field "a": holds the string "x" (and 2 more problems in this message) (set strings: true`
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("error %q, want prefix %q", err, want)
	}
}
