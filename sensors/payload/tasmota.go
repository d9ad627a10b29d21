package payload

import (
	"strings"
	"time"

	"github.com/edged-io/edged"
)

// tasmotaDecoder decodes Tasmota telemetry: tele/<device>/SENSOR (and
// stat/<device>/STATUS8 or STATUS10, whose StatusSNS object has the same
// shape).
type tasmotaDecoder struct {
	base
	loc *time.Location // the devices' zone; nil: Tasmota's Time is not used
}

// mark notes a reading whose unit is only known at the end of the message.
type mark struct {
	idx   int
	class uint8
}

const (
	classTemp uint8 = iota + 1
	classPressure
)

// tasmotaUnits maps Tasmota's value names to units; names under ENERGY
// are looked up as "ENERGY/<name>" first.
var tasmotaUnits = map[string]string{
	"Humidity":             "%",
	"Illuminance":          "lx",
	"CarbonDioxide":        "ppm",
	"eCO2":                 "ppm",
	"TVOC":                 "ppb",
	"PM1":                  "µg/m³",
	"PM2.5":                "µg/m³",
	"PM10":                 "µg/m³",
	"Distance":             "cm",
	"Gas":                  "kΩ",
	"Moisture":             "%",
	"Voltage":              "V",
	"Current":              "A",
	"Power":                "W",
	"ENERGY/Total":         "kWh",
	"ENERGY/Yesterday":     "kWh",
	"ENERGY/Today":         "kWh",
	"ENERGY/Period":        "Wh",
	"ENERGY/Power":         "W",
	"ENERGY/ActivePower":   "W",
	"ENERGY/ApparentPower": "VA",
	"ENERGY/ReactivePower": "var",
	"ENERGY/Factor":        "",
	"ENERGY/Voltage":       "V",
	"ENERGY/Current":       "A",
	"ENERGY/Frequency":     "Hz",
}

// tasmotaDevice returns the device name and how many wrapper objects to
// skip (1 for STATUS8/10's StatusSNS), or false for other topics.
func tasmotaDevice(topic string) (string, int, bool) {
	i := strings.LastIndexByte(topic, '/')
	if i <= 0 {
		return "", 0, false
	}
	wrap := 0
	switch topic[i+1:] {
	case "SENSOR":
	case "STATUS8", "STATUS10":
		wrap = 1
	default:
		return "", 0, false
	}
	dev := topic[:i]
	if j := strings.LastIndexByte(dev, '/'); j >= 0 {
		dev = dev[j+1:]
	}
	return dev, wrap, dev != ""
}

func (d *tasmotaDecoder) Decode(dst []edged.Reading, topic string, payload []byte, ingest int64) ([]edged.Reading, error) {
	dev, wrap, ok := tasmotaDevice(topic)
	if !ok {
		return dst, nil
	}
	if e := d.precheckObject(topic, payload, "sensor values"); e != nil {
		return dst, e
	}
	st := getScratch()
	defer putScratch(st)
	var (
		p                 problems
		n0                = len(dst)
		it                = &st.it
		env               = nameEnv{topic: topic, device: d.device}
		epoch, local      int64
		haveEpoch, haveTm bool
		timeErr           string
		tempUnit          = "°C"
		pressUnit         = "hPa"
	)
	marks := st.marks[:0]
	it.reset(payload)
	for it.next() {
		depth := it.depth()
		if depth < 1+wrap || (wrap == 1 && !keyIs(&it.stack[0], "StatusSNS", &st.key)) {
			continue
		}
		if depth == 1+wrap { // metadata: Time, Epoch, TempUnit, PressureUnit, …
			switch f := &it.stack[wrap]; {
			case keyIs(f, "Time", &st.key):
				local, haveTm, timeErr = d.localTime(st)
			case keyIs(f, "Epoch", &st.key) && it.kind == jNumber:
				var msg string
				if epoch, msg = parseUnix(it.raw, 1e9); msg == "" {
					haveEpoch = true
				}
			case keyIs(f, "TempUnit", &st.key) && it.kind == jString && string(it.raw) == "F":
				tempUnit = "°F"
			case keyIs(f, "PressureUnit", &st.key) && it.kind == jString:
				pressUnit = pressureUnit(it.raw)
			}
			continue
		}
		v, ok := d.leafValue(st, topic, &p, false)
		if !ok {
			continue
		}
		// The unit goes by the nearest key (array elements share it) and
		// its parent object.
		k := depth - 1
		for k > wrap && it.stack[k].idx >= 0 {
			k--
		}
		st.key = appendKey(st.key[:0], &it.stack[k])
		unit, class := tasmotaUnit(st, k > wrap && keyIs(&it.stack[k-1], "ENERGY", &st.field))

		st.field = append(append(st.field[:0], dev...), '/')
		st.field = appendPath(st.field, it.stack[wrap:])
		env.field = st.field
		series, r, msg := d.seriesName(&st.name, &env)
		if r != "" {
			p.add(topic, r, msg)
			continue
		}
		if class != 0 {
			marks = append(marks, mark{len(dst), class})
		}
		dst = append(dst, d.reading(series, unit, v, ingest))
	}
	st.marks = marks
	if it.err != "" {
		return dst[:n0], &Error{Reason: ReasonInvalidJSON, Topic: topic, Detail: it.errDetail()}
	}
	for _, m := range marks {
		if m.class == classTemp {
			dst[m.idx].Unit = tempUnit
		} else {
			dst[m.idx].Unit = pressUnit
		}
	}
	switch {
	case haveEpoch:
		stamp(dst[n0:], epoch, true)
	case timeErr != "" && len(dst) > n0:
		p.add(topic, ReasonBadTimestamp, "Time: "+timeErr)
		stamp(dst[n0:], 0, false)
	default:
		stamp(dst[n0:], local, haveTm)
	}
	return dst, p.err()
}

// tasmotaUnit returns the unit of the value named st.key, or a class to
// resolve once TempUnit/PressureUnit are known.
func tasmotaUnit(st *scratch, energy bool) (string, uint8) {
	name := st.key
	if energy {
		st.field = append(append(st.field[:0], "ENERGY/"...), name...)
		if u, ok := tasmotaUnits[string(st.field)]; ok {
			return u, 0
		}
	}
	switch {
	case strings.HasPrefix(string(name), "Temperature"), string(name) == "DewPoint":
		return "", classTemp
	case string(name) == "Pressure", string(name) == "SeaPressure":
		return "", classPressure
	}
	return tasmotaUnits[string(name)], 0
}

func pressureUnit(b []byte) string {
	for _, u := range []string{"hPa", "mmHg", "inHg", "kPa", "Pa", "mbar", "psi"} {
		if string(b) == u {
			return u
		}
	}
	return "hPa"
}

// localTime interprets Tasmota's Time: with a zone offset it is used as
// is; without one, in the configured zone; with neither, not at all.
func (d *tasmotaDecoder) localTime(st *scratch) (int64, bool, string) {
	it := &st.it
	if it.kind == jNumber { // "Time 2": epoch seconds
		t, msg := parseUnix(it.raw, 1e9)
		return t, msg == "", msg
	}
	if it.kind != jString || it.esc {
		return 0, false, "holds " + quote(it.raw) + ", want a time"
	}
	if hasZone(it.raw) {
		t, msg := parseRFC3339(it.raw)
		return t, msg == "", msg
	}
	if d.loc == nil {
		return 0, false, ""
	}
	t, err := time.ParseInLocation("2006-01-02T15:04:05", string(it.raw), d.loc)
	if err != nil {
		return 0, false, quote(it.raw) + " is not a Tasmota time (2006-01-02T15:04:05)"
	}
	ns, msg := unixNano(t, it.raw)
	return ns, msg == "", msg
}

// hasZone reports whether a time ends in Z or a ±hh:mm offset.
func hasZone(b []byte) bool {
	n := len(b)
	return n > 0 && (b[n-1] == 'Z' || b[n-1] == 'z') ||
		n > 6 && (b[n-6] == '+' || b[n-6] == '-') && b[n-3] == ':'
}
