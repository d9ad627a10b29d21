package payload

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/edged-io/edged"
)

// fuzzDecode checks what must hold for any message: no panic; readings
// appended after dst's existing ones, finite, named, of the device; at
// most one error, a *Error with a known reason naming the topic; the same
// result twice; the payload neither modified nor retained.
func fuzzDecode(t *testing.T, d Decoder, dev, topic string, payload []byte) {
	orig := bytes.Clone(payload)
	prefix := edged.Reading{Device: "other", Series: "prefix", Value: 1}
	rs, err := d.Decode([]edged.Reading{prefix}, topic, payload, ingest)
	if len(rs) == 0 || rs[0] != prefix {
		t.Fatalf("Decode dropped or changed dst's readings: %v", rs)
	}
	if !bytes.Equal(payload, orig) {
		t.Fatal("Decode modified the payload")
	}
	reasonOf(t, topic, err)
	checkReadings(t, rs[1:], dev, ingest)
	again, err2 := d.Decode(nil, topic, payload, ingest)
	if !slices.Equal(showAll(again), showAll(rs[1:])) || (err == nil) != (err2 == nil) ||
		(err != nil && err.Error() != err2.Error()) {
		t.Fatalf("Decode is not deterministic: %v %v / %v %v", showAll(rs[1:]), err, showAll(again), err2)
	}
	before := showAll(rs)
	for i := range payload {
		payload[i] ^= 0xff
	}
	if after := showAll(rs); !slices.Equal(before, after) {
		t.Fatal("readings share memory with the payload")
	}
	copy(payload, orig)
}

func addSeeds(f *testing.F, cases []decodeCase, formats ...Format) {
	for _, tc := range cases {
		format := tc.c.Format
		if format == "" {
			format = FormatNumber
		}
		if slices.Contains(formats, format) {
			f.Add(tc.topic, []byte(tc.payload))
		}
	}
}

func allCases() []decodeCase {
	return slices.Concat(formatCases, presetCases, malformed)
}

func FuzzNumber(f *testing.F) {
	addSeeds(f, allCases(), FormatNumber)
	for _, s := range []string{"1_000", "0x1p-2", "+Inf", "Infinity", "-0", ".", "1e", "1e+", "٣", "1.5e-400"} {
		f.Add("t", []byte(s))
	}
	d := mustNew(f, Config{Series: "{topic}"})
	f.Fuzz(func(t *testing.T, topic string, payload []byte) {
		fuzzDecode(t, d, device, topic, payload)
	})
}

func FuzzJSON(f *testing.F) {
	addSeeds(f, allCases(), FormatJSON)
	f.Add("t", []byte(`{"a":{"b":[1,{"c":"2"}]},"ts":"2024-05-01T12:00:00Z","on":true}`))
	f.Add("t", []byte(`{"\ud83d\ude00":1,"\ud800":2,"a\"b":3}`))
	decoders := []Decoder{
		mustNew(f, Config{Format: FormatJSON, Fields: []Field{{Path: "a.b[1].c"}, {Path: "a.b[0]", Series: "x"}, {Path: "on"}},
			Time: TimeSpec{Path: "ts", Format: TimeRFC3339}, Strings: true, Booleans: true}),
		mustNew(f, Config{Format: FormatJSON, Time: TimeSpec{Path: "t", Format: TimeUnixMS}}),
		mustNew(f, Config{Format: FormatJSON, Series: "{-1}/{field}"}),
	}
	f.Fuzz(func(t *testing.T, topic string, payload []byte) {
		for _, d := range decoders {
			fuzzDecode(t, d, device, topic, payload)
		}
	})
}

func FuzzLine(f *testing.F) {
	addSeeds(f, allCases(), FormatLine)
	f.Add("t", []byte("m,a=1,b=2 x=1i,y=2u,z=3,s=\"\\\"\",t=T 1\nm x=1\r\n# c\n"))
	decoders := []Decoder{
		mustNew(f, Config{Format: FormatLine}),
		mustNew(f, Config{Format: FormatLine, Series: "{tag:a}/{measurement}/{field}", Booleans: true, Time: TimeSpec{Format: TimeUnixS}}),
	}
	f.Fuzz(func(t *testing.T, topic string, payload []byte) {
		for _, d := range decoders {
			fuzzDecode(t, d, device, topic, payload)
		}
	})
}

// fuzzPreset fuzzes a preset on the fuzzed topic and on topics of its layout.
func fuzzPreset(f *testing.F, c Config, topics ...string) {
	addSeeds(f, allCases(), c.Format)
	d := mustNew(f, c)
	f.Fuzz(func(t *testing.T, topic string, payload []byte) {
		fuzzDecode(t, d, device, topic, payload)
		for _, tp := range topics {
			fuzzDecode(t, d, device, tp, payload)
		}
	})
}

func FuzzZigbee2MQTT(f *testing.F) {
	fuzzPreset(f, Config{Format: FormatZigbee2MQTT, Booleans: true}, "zigbee2mqtt/living/th")
}

func FuzzTasmota(f *testing.F) {
	fuzzPreset(f, Config{Format: FormatTasmota, Timezone: "Europe/Berlin"}, "tele/kitchen/SENSOR", "stat/kitchen/STATUS10")
}

func FuzzShelly(f *testing.F) {
	fuzzPreset(f, Config{Format: FormatShelly}, "shellies/ht/sensor/temperature", "shellies/pm/relay/0/energy",
		"plus/status/switch:0", "plus/status/devicepower:0", "plus/events/rpc")
}

func FuzzESPHome(f *testing.F) {
	fuzzPreset(f, Config{Format: FormatESPHome, Booleans: true}, "node/sensor/temperature/state", "node/binary_sensor/door/state")
}

// FuzzConfig: any configuration either fails Validate (and New) or builds
// a decoder that upholds the Decode invariants.
func FuzzConfig(f *testing.F) {
	f.Add("json", "{topic}/{field}", "a.b[0]", "x", "°C", "ts", "unix_ms", "", false, true, 0, "a/b", []byte(`{"a":{"b":[1]},"ts":1}`))
	f.Add("line", "{measurement}{tags}/{tag:h}/{field}", "", "", "", "", "unix_s", "", true, false, 100, "l", []byte("m,h=x v=1 2"))
	f.Add("tasmota", "{field}", "", "", "", "", "", "Europe/Berlin", false, false, 0, "tele/k/SENSOR", []byte(`{"Time":"2024-05-01T12:00:00","A":{"Temperature":1}}`))
	f.Add("number", "{1}/{-1}/{device}", "", "", "", "", "", "", false, false, 4, "a/b/c", []byte("12"))
	f.Add("zigbee2mqtt", "{3}{field}", "", "", "", "", "", "", true, false, 0, "z/a/b", []byte(`{"t":1}`))
	f.Add("shelly", "{", "", "", "", "", "", "", false, false, 0, "x", []byte("1"))
	f.Add("json", "{field}", `["a"`, "", "", "[0]", "rfc3339", "", false, false, -1, "x", []byte("[1]"))
	f.Fuzz(func(t *testing.T, format, series, path, fseries, unit, tpath, tformat, tz string,
		booleans, strs bool, maxPayload int, topic string, payload []byte) {
		if strings.Contains(tz, "..") || strings.HasPrefix(tz, "/") {
			return // time.LoadLocation reads files; keep the fuzzer off the file system
		}
		c := Config{Format: Format(format), Series: series, Unit: unit, Timezone: tz, Booleans: booleans,
			Strings: strs, MaxPayload: maxPayload, Time: TimeSpec{Path: tpath, Format: TimeFormat(tformat)}}
		if path != "" {
			c.Fields = []Field{{Path: path, Series: fseries, Unit: unit}}
		}
		verr := c.Validate()
		d, err := New(c, device)
		if (verr == nil) != (err == nil) {
			t.Fatalf("Validate = %v but New = %v", verr, err)
		}
		if err != nil {
			if !strings.HasPrefix(err.Error(), "payload: ") {
				t.Fatalf("error without prefix: %v", err)
			}
			return
		}
		fuzzDecode(t, d, device, topic, payload)
	})
}

// FuzzJSONScanner compares the scanner with encoding/json: the same
// documents are valid, and a valid one yields the same numbers, strings
// and keys (as multisets: encoding/json's maps lose the order).
func FuzzJSONScanner(f *testing.F) {
	for _, tc := range allCases() {
		f.Add([]byte(tc.payload))
	}
	for _, s := range []string{`{"a":[1,2,{"b":null}],"c":"\u00e9\n","d":-0.5e+3}`, `[]`, `{}`, `""`, `"\ud800x"`, `[1,]`, "\"\x01\"", ` 1 `, `01`, `-`, `1.`, `1e`, `{"a" 1}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var it jsonIter
		it.reset(b)
		var nums, strs []string
		for it.next() {
			switch it.kind {
			case jNumber:
				nums = append(nums, string(it.raw))
			case jString:
				strs = append(strs, string(unescape(nil, it.raw)))
			}
		}
		if strings.Contains(it.err, "nesting deeper") {
			return
		}
		valid := json.Valid(b)
		if valid != (it.err == "") {
			t.Fatalf("scanner error %q, json.Valid = %v", it.err, valid)
		}
		if !valid || !utf8.Valid(b) {
			return
		}
		d := json.NewDecoder(bytes.NewReader(b))
		d.UseNumber()
		var v any
		if err := d.Decode(&v); err != nil {
			t.Fatal(err)
		}
		var wantNums, wantStrs []string
		var walk func(any)
		walk = func(v any) {
			switch v := v.(type) {
			case json.Number:
				wantNums = append(wantNums, string(v))
			case string:
				wantStrs = append(wantStrs, v)
			case []any:
				for _, e := range v {
					walk(e)
				}
			case map[string]any:
				for _, e := range v {
					walk(e)
				}
			}
		}
		walk(v)
		slices.Sort(nums)
		slices.Sort(wantNums)
		slices.Sort(strs)
		slices.Sort(wantStrs)
		if hasDuplicateKeys(b) {
			return // encoding/json keeps the last of repeated keys
		}
		if !slices.Equal(nums, wantNums) {
			t.Fatalf("numbers %q, encoding/json %q", nums, wantNums)
		}
		if !slices.Equal(strs, wantStrs) {
			t.Fatalf("strings %q, encoding/json %q", strs, wantStrs)
		}
	})
}

// hasDuplicateKeys reports whether an object in b repeats a key.
func hasDuplicateKeys(b []byte) bool {
	d := json.NewDecoder(bytes.NewReader(b))
	type obj struct {
		keys   map[string]bool
		expect bool
	}
	var stack []*obj
	for {
		tok, err := d.Token()
		if err != nil {
			return false
		}
		switch tok := tok.(type) {
		case json.Delim:
			switch tok {
			case '{':
				stack = append(stack, &obj{keys: map[string]bool{}, expect: true})
				continue
			case '[':
				stack = append(stack, nil)
				continue
			default:
				stack = stack[:len(stack)-1]
			}
		case string:
			if n := len(stack); n > 0 && stack[n-1] != nil && stack[n-1].expect {
				if stack[n-1].keys[tok] {
					return true
				}
				stack[n-1].keys[tok] = true
				stack[n-1].expect = false
				continue
			}
		}
		if n := len(stack); n > 0 && stack[n-1] != nil {
			stack[n-1].expect = true
		}
	}
}
