package payload

import (
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/edged-io/edged"
)

type decodeCase struct {
	name    string
	c       Config
	topic   string
	payload string
	want    []string // show() of each reading, in order
	reason  Reason   // of the one error, "" for none
}

// formatCases cover the generic formats with realistic payloads.
var formatCases = []decodeCase{
	// number
	{name: "number/plain", topic: "greenhouse/temperature", payload: "21.5",
		want: []string{"greenhouse/temperature=21.5[] @ingest"}},
	{name: "number/space-negative", c: Config{Unit: "°C"}, topic: "greenhouse/temperature", payload: " -3\r\n",
		want: []string{"greenhouse/temperature=-3[°C] @ingest"}},
	{name: "number/exponent", topic: "lab/lux", payload: "1e3", want: []string{"lab/lux=1000[] @ingest"}},
	{name: "number/template", c: Config{Series: "{2}/{-1}"}, topic: "home/greenhouse/sensors/soil", payload: "+.5",
		want: []string{"greenhouse/soil=0.5[] @ingest"}},
	{name: "number/constant-series", c: Config{Series: "greenhouse/temperature", Device: "gh1"}, topic: "x/y", payload: "7",
		want: []string{"greenhouse/temperature=7[] @ingest"}},

	// json with fields
	{name: "json/fields-unix-ms",
		c: Config{Format: FormatJSON, Series: "{2}/{field}",
			Fields: []Field{{Path: "env.temp", Series: "temperature", Unit: "°C"}, {Path: "env.hum", Series: "humidity", Unit: "%"}},
			Time:   TimeSpec{Path: "ts", Format: TimeUnixMS}},
		topic: "site/greenhouse/state", payload: `{"ts":1714564799123,"env":{"temp":21.5,"hum":45.2},"fw":"1.2.3"}`,
		want: []string{"greenhouse/temperature=21.5[°C] @2024-05-01T11:59:59.123Z", "greenhouse/humidity=45.2[%] @2024-05-01T11:59:59.123Z"}},
	{name: "json/fields-rfc3339-arrays",
		c: Config{Format: FormatJSON, Series: "{field}", Unit: "°C",
			Fields: []Field{{Path: "probes[1].t", Series: "tank/bottom"}, {Path: "[\"probe.top\"]", Series: "tank/top"}},
			Time:   TimeSpec{Path: "meta.time", Format: TimeRFC3339}},
		topic: "tank", payload: `{"meta":{"time":"2024-05-01T13:59:00+02:00"},"probes":[{"t":60.1},{"t":48.25}],"probe.top":61}`,
		want: []string{"tank/bottom=48.25[°C] @2024-05-01T11:59:00Z", "tank/top=61[°C] @2024-05-01T11:59:00Z"}},
	{name: "json/unix-s-fraction-string",
		c:     Config{Format: FormatJSON, Fields: []Field{{Path: "v"}}, Time: TimeSpec{Path: "t", Format: TimeUnixS}},
		topic: "dev", payload: `{"t":"1714564790.5","v":1}`,
		want: []string{"dev/v=1[] @2024-05-01T11:59:50.5Z"}},
	{name: "json/booleans-strings",
		c: Config{Format: FormatJSON, Booleans: true, Strings: true,
			Fields: []Field{{Path: "relay"}, {Path: "level"}}},
		topic: "pump", payload: `{"relay":true,"level":" 42.5 "}`,
		want: []string{"pump/relay=1[] @ingest", "pump/level=42.5[] @ingest"}},
	{name: "json/top-level-array", c: Config{Format: FormatJSON, Fields: []Field{{Path: "[0].v", Series: "first"}}},
		topic: "arr", payload: `[{"v":1},{"v":2}]`, want: []string{"arr/first=1[] @ingest"}},
	{name: "json/escaped-key", c: Config{Format: FormatJSON, Fields: []Field{{Path: "t°"}}},
		topic: "esc", payload: `{"t\u00b0":3}`, want: []string{"esc/t°=3[] @ingest"}},
	{name: "json/repeated-key-last-wins", c: Config{Format: FormatJSON, Fields: []Field{{Path: "a"}}},
		topic: "dup", payload: `{"a":1,"a":2}`, want: []string{"dup/a=2[] @ingest"}},
	{name: "json/absurd-past-and-future", c: Config{Format: FormatJSON, Fields: []Field{{Path: "v"}}, Time: TimeSpec{Path: "t", Format: TimeUnixS}},
		topic: "rtc", payload: `{"t":86400,"v":1}`, want: []string{"rtc/v=1[] @1970-01-02T00:00:00Z absurd"}},
	{name: "json/absurd-future", c: Config{Format: FormatJSON, Fields: []Field{{Path: "v"}}, Time: TimeSpec{Path: "t", Format: TimeUnixS}},
		topic: "rtc", payload: `{"t":1714565101,"v":1}`, want: []string{"rtc/v=1[] @2024-05-01T12:05:01Z absurd"}},
	{name: "json/near-future-ok", c: Config{Format: FormatJSON, Fields: []Field{{Path: "v"}}, Time: TimeSpec{Path: "t", Format: TimeUnixS}},
		topic: "rtc", payload: `{"t":1714565100,"v":1}`, want: []string{"rtc/v=1[] @2024-05-01T12:05:00Z"}},
	{name: "json/missing-time-is-ingest", c: Config{Format: FormatJSON, Fields: []Field{{Path: "v"}}, Time: TimeSpec{Path: "t", Format: TimeUnixNS}},
		topic: "rtc", payload: `{"v":1}`, want: []string{"rtc/v=1[] @ingest"}},

	// json, every numeric leaf
	{name: "json/leaves", c: Config{Format: FormatJSON},
		topic: "weather", payload: `{"temp":21.5,"wind":{"speed":3.2,"dir":"NW"},"rain":[0,0.2],"ok":true,"n":null}`,
		want: []string{"weather/temp=21.5[] @ingest", "weather/wind/speed=3.2[] @ingest", "weather/rain/0=0[] @ingest", "weather/rain/1=0.2[] @ingest"}},
	{name: "json/leaves-skip-time", c: Config{Format: FormatJSON, Series: "{field}", Time: TimeSpec{Path: "ts", Format: TimeUnixS}},
		topic: "x", payload: `{"ts":1714564800,"t":1}`, want: []string{"t=1[] @2024-05-01T12:00:00Z"}},
	{name: "json/bare-number", c: Config{Format: FormatJSON}, topic: "x", payload: `21.5`, want: []string{"x/value=21.5[] @ingest"}},

	// InfluxDB line protocol
	{name: "line/reference-example", c: Config{Format: FormatLine}, topic: "telegraf",
		payload: `weather,location=us-midwest,season=summer temperature=82,humidity=71i 1714564790000000000`,
		want: []string{"weather,location=us-midwest,season=summer/temperature=82[] @2024-05-01T11:59:50Z",
			"weather,location=us-midwest,season=summer/humidity=71[] @2024-05-01T11:59:50Z"}},
	{name: "line/tags-sorted-escapes", c: Config{Format: FormatLine}, topic: "t",
		payload: `my\ meas,z=1,tag\,key=va\=l\ ue field\ key=1.5,s="a \"quoted\" string, with, commas",u=7u`,
		want:    []string{`my meas,tag,key=va=l ue,z=1/field key=1.5[] @ingest`, `my meas,tag,key=va=l ue,z=1/u=7[] @ingest`}},
	{name: "line/multi-comments-crlf-precision", c: Config{Format: FormatLine, Series: "{tag:room}/{field}", Unit: "°C", Time: TimeSpec{Format: TimeUnixS}},
		topic: "home", payload: "# from telegraf\r\nhome,room=Kitchen temp=21.5 1714564790\r\n\r\nhome,room=Living\\ Room temp=22.25,on=t 1714564791\n",
		want: []string{"Kitchen/temp=21.5[°C] @2024-05-01T11:59:50Z", "Living Room/temp=22.25[°C] @2024-05-01T11:59:51Z"}},
	{name: "line/booleans", c: Config{Format: FormatLine, Booleans: true, Series: "{measurement}/{field}"}, topic: "x",
		payload: "sw state=TRUE,fault=f,count=-3i", want: []string{"sw/state=1[] @ingest", "sw/fault=0[] @ingest", "sw/count=-3[] @ingest"}},
	{name: "line/string-field-newline", c: Config{Format: FormatLine, Series: "{measurement}/{field}"}, topic: "x",
		payload: "log msg=\"two\nlines\",v=1 1714564800000000000\nlog v=2", want: []string{"log/v=1[] @2024-05-01T12:00:00Z", "log/v=2[] @ingest"}},
}

func TestDecodeFormats(t *testing.T) { runDecodeCases(t, formatCases) }

func runDecodeCases(t *testing.T, cases []decodeCase) {
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := mustNew(t, tc.c)
			payload := []byte(tc.payload)
			prefix := []string{"keep=1[] @ingest"}
			dst := mustNew(t, Config{Series: "keep"}) // dst already holds a reading: Decode must append
			rs, err := dst.Decode(nil, "k", []byte("1"), ingest)
			if err != nil {
				t.Fatal(err)
			}
			rs, err = d.Decode(rs, tc.topic, payload, ingest)
			if got := reasonOf(t, tc.topic, err); got != tc.reason {
				t.Errorf("reason %q (%v), want %q", got, err, tc.reason)
			}
			if got := showAll(rs); !slices.Equal(got, append(prefix, tc.want...)) {
				t.Errorf("readings:\n  %s\nwant:\n  %s", strings.Join(got[1:], "\n  "), strings.Join(tc.want, "\n  "))
			}
			wantDev := device
			if tc.c.Device != "" {
				wantDev = tc.c.Device
			}
			checkReadings(t, rs[1:], wantDev, ingest)

			// The decoder keeps nothing of the payload.
			before := showAll(rs)
			for i := range payload {
				payload[i] = 'X'
			}
			if after := showAll(rs); !slices.Equal(before, after) {
				t.Errorf("readings changed with the payload buffer: %v", after)
			}
		})
	}
}

// TestConcurrentDecode: one decoder serves many goroutines (run with -race).
func TestConcurrentDecode(t *testing.T) {
	cases := append(append([]decodeCase(nil), presetCases...), formatCases...)
	decoders := make([]Decoder, len(cases))
	for i, tc := range cases {
		decoders[i] = mustNew(t, tc.c)
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var dst []edged.Reading
			for round := range 50 {
				i := (g*7 + round) % len(cases)
				tc := cases[i]
				var err error
				dst, err = decoders[i].Decode(dst[:0], tc.topic, []byte(tc.payload), ingest)
				if got := strings.Join(showAll(dst), "|"); got != strings.Join(tc.want, "|") || (err != nil) != (tc.reason != "") {
					t.Errorf("%s: %s, %v", tc.name, got, err)
					return
				}
			}
		}()
	}
	wg.Wait()
}
