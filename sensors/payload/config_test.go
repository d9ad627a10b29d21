package payload

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	ok := []Config{
		{},
		{Format: FormatNumber, Series: "{topic}", Unit: "°C", MaxPayload: 1024},
		{Format: FormatJSON, Series: "{device}/{2}/{field}", Fields: []Field{{Path: "a.b[0].c", Series: "c", Unit: "°C"}, {Path: `x["y.z"]`}},
			Time: TimeSpec{Path: "ts", Format: TimeUnixMS}, Booleans: true, Strings: true},
		{Format: FormatLine, Series: "{measurement}/{tag:host}/{field}", Time: TimeSpec{Format: TimeUnixS}},
		{Format: FormatZigbee2MQTT, Series: "home/{field}", Booleans: true},
		{Format: FormatTasmota, Timezone: "Europe/Berlin"},
		{Format: FormatShelly},
		{Format: FormatJSON, Series: "greenhouse/temperature", Fields: []Field{{Path: "t"}}},
		{Format: FormatESPHome, Unit: "%", Booleans: true},
	}
	for _, c := range ok {
		if err := c.Validate(); err != nil {
			t.Errorf("Validate(%+v): %v", c, err)
		}
		if _, err := New(c, "pi"); err != nil {
			t.Errorf("New(%+v): %v", c, err)
		}
	}
	bad := []struct {
		c    Config
		want []string // each in the error
	}{
		{Config{Format: "xml"}, []string{"format: unknown format \"xml\""}},
		{Config{Series: "{field}"}, []string{"series:", "{field} is not available"}},
		{Config{Series: "{nope}"}, []string{"unknown placeholder {nope}"}},
		{Config{Series: "{0}"}, []string{"unknown placeholder {0}"}},
		{Config{Series: "a{b"}, []string{"unclosed '{'"}},
		{Config{Series: "a}b"}, []string{"unmatched '}'"}},
		{Config{Format: FormatJSON, Series: "{tags}"}, []string{"{tags} is only available for format line"}},
		{Config{Format: FormatLine, Series: "{tag:}"}, []string{"{tag:} needs a tag key"}},
		{Config{Series: "bad\x01name"}, []string{"control character"}},
		{Config{Fields: []Field{{Path: "a"}}}, []string{"fields are for format json"}},
		{Config{Format: FormatJSON, Fields: []Field{{Path: ""}}}, []string{"fields[0].path: empty path"}},
		{Config{Format: FormatJSON, Fields: []Field{{Path: "a..b"}}}, []string{"fields[0].path"}},
		{Config{Format: FormatJSON, Fields: []Field{{Path: "a[x]"}}}, []string{"bad index"}},
		{Config{Format: FormatJSON, Fields: []Field{{Path: "a[0]b"}}}, []string{"want '.' or '['"}},
		{Config{Format: FormatJSON, Fields: []Field{{Path: "a"}, {Path: "a"}}}, []string{"fields[1].path", "repeats"}},
		{Config{Format: FormatJSON, Fields: []Field{{Path: "a", Unit: "\n"}}}, []string{"fields[0].unit"}},
		{Config{Format: FormatJSON, Time: TimeSpec{Path: "ts"}}, []string{"time: give both"}},
		{Config{Format: FormatJSON, Time: TimeSpec{Path: "ts", Format: "iso"}}, []string{"time.format: unknown format"}},
		{Config{Format: FormatLine, Time: TimeSpec{Path: "ts", Format: TimeUnixS}}, []string{"time.path: line protocol"}},
		{Config{Format: FormatLine, Time: TimeSpec{Format: TimeRFC3339}}, []string{"not a line-protocol precision"}},
		{Config{Format: FormatShelly, Time: TimeSpec{Format: TimeUnixS}}, []string{"time is for formats json and line"}},
		{Config{Format: FormatTasmota, Timezone: "Mars/Olympus"}, []string{"timezone:"}},
		{Config{Format: FormatJSON, Timezone: "UTC"}, []string{"timezone is for format tasmota"}},
		{Config{Format: FormatShelly, Booleans: true}, []string{"booleans is for"}},
		{Config{Format: FormatLine, Strings: true}, []string{"strings is for format json"}},
		{Config{MaxPayload: -1}, []string{"max_payload: negative"}},
		{Config{MaxPayload: 1 << 30}, []string{"max_payload:", "256 MiB"}},
		{Config{Device: strings.Repeat("d", 2000)}, []string{"device:", "limit 1024"}},
		{Config{Format: FormatJSON, Series: "greenhouse/{1}"}, []string{"has no {field}"}},
		{Config{Format: FormatLine, Series: "{measurement}"}, []string{"has no {field}"}},
		{Config{Format: FormatZigbee2MQTT, Series: "home"}, []string{"has no {field}"}},
		{Config{Format: FormatJSON, Fields: []Field{{Path: "t"}}, Time: TimeSpec{Path: "t", Format: TimeUnixS}}, []string{"time.path", "also fields[0].path"}},
		// Every problem is reported, not only the first.
		{Config{Format: FormatNumber, Series: "{x}", Fields: []Field{{Path: "a"}}, Strings: true},
			[]string{"series:", "fields:", "strings:"}},
	}
	for _, tc := range bad {
		err := tc.c.Validate()
		if err == nil {
			t.Errorf("Validate(%+v) = nil, want %q", tc.c, tc.want)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("Validate(%+v) = %q, want it to contain %q", tc.c, err, w)
			}
		}
		if !strings.HasPrefix(err.Error(), "payload: ") {
			t.Errorf("error %q lacks the package prefix", err)
		}
		if _, nerr := New(tc.c, "pi"); nerr == nil {
			t.Errorf("New(%+v) succeeded", tc.c)
		}
	}
	if _, err := New(Config{}, ""); err == nil || !strings.Contains(err.Error(), "device id") {
		t.Errorf("New without a device id: %v", err)
	}
	if _, err := New(Config{Device: "gh"}, ""); err != nil {
		t.Errorf("New with Config.Device only: %v", err)
	}
}

func TestParsePath(t *testing.T) {
	cases := []struct {
		in   string
		want string // pathName
	}{
		{"a", "a"},
		{"a.b.c", "a/b/c"},
		{"a.b[0].c", "a/b/0/c"},
		{"[2].v", "2/v"},
		{"[1][2]", "1/2"},
		{`sensors["t.1"].v`, "sensors/t.1/v"},
		{`["a[0]"]`, "a[0]"},
		{"temperature:0.tC", "temperature:0/tC"},
	}
	for _, c := range cases {
		steps, err := parsePath(c.in)
		if err != nil {
			t.Errorf("parsePath(%q): %v", c.in, err)
			continue
		}
		if got := pathName(steps); got != c.want {
			t.Errorf("parsePath(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	for _, in := range []string{"", ".a", "a.", "a..b", "a[", "a[]", "a[-1]", "a[+1]", "a]", "a[0]b", `a[""]`, `a["b`, strings.Repeat("a.", 40) + "a"} {
		if _, err := parsePath(in); err == nil {
			t.Errorf("parsePath(%q) succeeded", in)
		}
	}
}

func TestSegment(t *testing.T) {
	topic := "tele/kitchen/SENSOR"
	for n, want := range map[int]string{1: "tele", 2: "kitchen", 3: "SENSOR", -1: "SENSOR", -3: "tele"} {
		if got, ok := segment(topic, n); !ok || got != want {
			t.Errorf("segment(%q, %d) = %q, %v; want %q", topic, n, got, ok, want)
		}
	}
	for _, n := range []int{4, -4} {
		if _, ok := segment(topic, n); ok {
			t.Errorf("segment(%q, %d) exists", topic, n)
		}
	}
}

func TestReasonsClosed(t *testing.T) {
	rs := Reasons()
	if len(rs) != len(hints) {
		t.Errorf("%d reasons, %d hints", len(rs), len(hints))
	}
	for _, r := range rs {
		if hints[r] == "" {
			t.Errorf("reason %q has no hint", r)
		}
	}
	rs[0] = "mutated"
	if slices.Contains(Reasons(), "mutated") {
		t.Error("Reasons returns the package's slice")
	}
}

func TestQuantityOf(t *testing.T) {
	if q, ok := QuantityOf("Temperature"); !ok || q.Unit != "°C" || q.DeviceClass != "temperature" {
		t.Errorf("QuantityOf(Temperature) = %+v, %v", q, ok)
	}
	if q, ok := QuantityOf("energy"); !ok || q.StateClass != "total_increasing" {
		t.Errorf("QuantityOf(energy) = %+v, %v", q, ok)
	}
	if _, ok := QuantityOf("frobnication"); ok {
		t.Error("QuantityOf(frobnication) found")
	}
}

func TestMinTime(t *testing.T) {
	if want := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano(); MinTime != want {
		t.Fatalf("MinTime = %d, want %d", MinTime, want)
	}
}
