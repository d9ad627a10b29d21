package payload

import (
	"strings"

	"github.com/edged-io/edged"
)

// shellyDecoder decodes Shelly devices: Gen1's one-number topics under
// shellies/<id>/… and Gen2+'s JSON component status, published on
// <id>/status/<component>:<n> or inside NotifyStatus/NotifyFullStatus
// on <id>/events/rpc.
type shellyDecoder struct{ base }

// shellyGen1 maps the topic tail after shellies/<id>/ to a unit and a
// scale: sensor/<name>, <channel kind>/<n>/<quantity>, or a device value.
// Gen1 energy counters are in watt-minutes; edged stores Wh.
var (
	shellyGen1Sensor = map[string]string{
		"temperature": "°C", "humidity": "%", "battery": "%", "lux": "lx",
		"tilt": "°", "concentration": "ppm",
	}
	shellyGen1Channel = map[string]bool{
		"relay": true, "emeter": true, "light": true, "roller": true, "white": true, "color": true,
	}
	shellyGen1Quantity = map[string]struct {
		unit  string
		scale float64
	}{
		"power": {"W", 1}, "reactive_power": {"var", 1}, "voltage": {"V", 1}, "current": {"A", 1},
		"pf": {"", 1}, "pos": {"%", 1}, "total": {"Wh", 1}, "total_returned": {"Wh", 1},
		"energy": {"Wh", 1.0 / 60}, "returned_energy": {"Wh", 1.0 / 60},
	}
	shellyGen1Device = map[string]string{"temperature": "°C", "voltage": "V"}
)

type shellyFieldSpec struct{ path, unit string }

// shellyGen2 lists, per component type, the fields taken from its status
// (paths with dots, as in Shelly's API docs) and their units.
var shellyGen2 = map[string][]shellyFieldSpec{
	"temperature": {{"tC", "°C"}},
	"humidity":    {{"rh", "%"}},
	"devicepower": {{"battery.percent", "%"}, {"battery.V", "V"}},
	"illuminance": {{"lux", "lx"}},
	"voltmeter":   {{"voltage", "V"}},
	"switch":      meterFields("temperature.tC"),
	"pm1":         meterFields(),
	"cover":       append(meterFields("temperature.tC"), shellyFieldSpec{"current_pos", "%"}),
	"light":       append(meterFields("temperature.tC"), shellyFieldSpec{"brightness", "%"}),
	"em1": {{"act_power", "W"}, {"aprt_power", "VA"}, {"voltage", "V"}, {"current", "A"},
		{"freq", "Hz"}, {"pf", ""}},
	"em1data": {{"total_act_energy", "Wh"}, {"total_act_ret_energy", "Wh"}},
	"em": {{"a_act_power", "W"}, {"b_act_power", "W"}, {"c_act_power", "W"}, {"total_act_power", "W"},
		{"a_voltage", "V"}, {"b_voltage", "V"}, {"c_voltage", "V"},
		{"a_current", "A"}, {"b_current", "A"}, {"c_current", "A"}, {"total_current", "A"}},
	"emdata": {{"total_act", "Wh"}, {"total_act_ret", "Wh"}},
}

func meterFields(extra ...string) []shellyFieldSpec {
	f := []shellyFieldSpec{{"apower", "W"}, {"voltage", "V"}, {"current", "A"},
		{"freq", "Hz"}, {"pf", ""}, {"aenergy.total", "Wh"}, {"ret_aenergy.total", "Wh"}}
	for _, e := range extra {
		f = append(f, shellyFieldSpec{e, "°C"})
	}
	return f
}

func (d *shellyDecoder) Decode(dst []edged.Reading, topic string, payload []byte, ingest int64) ([]edged.Reading, error) {
	if rest, ok := strings.CutPrefix(topic, "shellies/"); ok {
		return d.gen1(dst, topic, rest, payload, ingest)
	}
	i := strings.LastIndexByte(topic, '/')
	if i <= 0 {
		return dst, nil
	}
	prefix, last := topic[:i], topic[i+1:]
	if last == "rpc" && strings.HasSuffix(prefix, "/events") {
		return d.gen2(dst, topic, strings.TrimSuffix(prefix, "/events"), "", payload, ingest)
	}
	if comp, _, ok := strings.Cut(last, ":"); ok && strings.HasSuffix(prefix, "/status") && shellyGen2[comp] != nil {
		return d.gen2(dst, topic, strings.TrimSuffix(prefix, "/status"), last, payload, ingest)
	}
	return dst, nil
}

// gen1 decodes shellies/<id>/<rest>; topics that carry no known numeric
// quantity (announce, online, input/0, relay/0 "on", …) are ignored.
func (d *shellyDecoder) gen1(dst []edged.Reading, topic, rest string, payload []byte, ingest int64) ([]edged.Reading, error) {
	id, tail, ok := strings.Cut(rest, "/")
	if !ok || id == "" {
		return dst, nil
	}
	var (
		name  = tail
		unit  string
		scale = 1.0
		known bool
	)
	p0, rest, two := strings.Cut(tail, "/")
	p1, p2, three := strings.Cut(rest, "/")
	switch {
	case !two:
		unit, known = shellyGen1Device[tail]
	case !three && p0 == "sensor":
		name = p1
		unit, known = shellyGen1Sensor[name]
	case three && shellyGen1Channel[p0] && isDigits(p1) && !strings.Contains(p2, "/"):
		q, ok := shellyGen1Quantity[p2]
		unit, scale, known = q.unit, q.scale, ok
	}
	if !known {
		return dst, nil
	}
	if e := d.precheck(topic, payload); e != nil {
		return dst, e
	}
	v, r, msg := parseTextNumber(payload)
	if r != "" {
		return dst, &Error{Reason: r, Detail: msg, Topic: topic}
	}
	st := getScratch()
	defer putScratch(st)
	st.field = append(append(append(st.field[:0], id...), '/'), name...)
	return d.appendOne(dst, st, topic, st.field, unit, v*scale, ingest)
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// gen2 decodes a component's status object (comp = "switch:0") or, with
// comp == "", the params of an RPC notification: {"ts": …, "switch:0":
// {…}, …}, whose ts is the event time (Unix seconds).
func (d *shellyDecoder) gen2(dst []edged.Reading, topic, id, comp string, payload []byte, ingest int64) ([]edged.Reading, error) {
	if e := d.precheckObject(topic, payload, "component status"); e != nil {
		return dst, e
	}
	st := getScratch()
	defer putScratch(st)
	var (
		p      problems
		n0     = len(dst)
		it     = &st.it
		env    = nameEnv{topic: topic, device: d.device}
		t      int64
		haveT  bool
		skip   = 0 // containers above the component's fields
		fields []shellyFieldSpec
	)
	if comp == "" {
		skip = 2 // {"params": {"switch:0": {…}}}
	} else {
		typ, _, _ := strings.Cut(comp, ":")
		fields = shellyGen2[typ]
	}
	it.reset(payload)
	for it.next() {
		depth := it.depth()
		if skip == 2 {
			if depth < 2 || !keyIs(&it.stack[0], "params", &st.key) {
				continue
			}
			c := &it.stack[1]
			if depth == 2 && keyIs(c, "ts", &st.key) && it.kind == jNumber {
				var msg string
				if t, msg = parseUnix(it.raw, 1e9); msg != "" {
					p.add(topic, ReasonBadTimestamp, "params.ts: "+msg)
				} else {
					haveT = true
				}
				continue
			}
			if depth < 3 || c.esc || c.idx >= 0 {
				continue
			}
			typ := c.key
			if i := bytesIndexByte(typ, ':'); i >= 0 {
				typ = typ[:i]
			} else {
				continue
			}
			fields = shellyGen2[string(typ)]
		}
		unit, ok := shellyField(st, fields, skip)
		if !ok {
			continue
		}
		v, ok := d.leafValue(st, topic, &p, false)
		if !ok {
			continue
		}
		st.field = append(append(st.field[:0], id...), '/')
		if skip == 2 {
			st.field = append(st.field, it.stack[1].key...)
		} else {
			st.field = append(st.field, comp...)
		}
		st.field = append(st.field, '/')
		st.field = appendPath(st.field, it.stack[skip:])
		env.field = st.field
		series, r, msg := d.seriesName(&st.name, &env)
		if r != "" {
			p.add(topic, r, msg)
			continue
		}
		dst = append(dst, d.reading(series, unit, v, ingest))
	}
	if it.err != "" {
		return dst[:n0], &Error{Reason: ReasonInvalidJSON, Topic: topic, Detail: it.errDetail()}
	}
	stamp(dst[n0:], t, haveT)
	return dst, p.err()
}

func bytesIndexByte(b []byte, c byte) int {
	for i := range b {
		if b[i] == c {
			return i
		}
	}
	return -1
}

// shellyField reports whether the current leaf, below skip containers,
// is one of fields, and its unit.
func shellyField(st *scratch, fields []shellyFieldSpec, skip int) (string, bool) {
	if fields == nil {
		return "", false
	}
	st.key = st.key[:0]
	for i, f := range st.it.stack[skip:] {
		if f.idx >= 0 || f.esc {
			return "", false
		}
		if i > 0 {
			st.key = append(st.key, '.')
		}
		st.key = append(st.key, f.key...)
	}
	for _, f := range fields {
		if string(st.key) == f.path {
			return f.unit, true
		}
	}
	return "", false
}
