package payload

import (
	"strings"

	"github.com/edged-io/edged"
)

// z2mDecoder decodes Zigbee2MQTT device state: topic
// <base>/<friendly_name>, a JSON object of the device's current state.
type z2mDecoder struct{ base }

// z2mDevice returns the friendly name of a device-state topic, or false
// for the bridge's topics and for availability, set and get topics.
func z2mDevice(topic string) (string, bool) {
	_, name, ok := strings.Cut(topic, "/")
	if !ok || name == "" || name == "bridge" || strings.HasPrefix(name, "bridge/") {
		return "", false
	}
	for rest := name; rest != ""; {
		var seg string
		seg, rest, _ = strings.Cut(rest, "/")
		if seg == "set" || seg == "get" || (seg == "availability" && rest == "") {
			return "", false
		}
	}
	return name, true
}

// firstByte returns the first non-space byte of b, or 0.
func firstByte(b []byte) byte {
	for _, c := range b {
		if !isSpace(c) {
			return c
		}
	}
	return 0
}

func (d *z2mDecoder) Decode(dst []edged.Reading, topic string, payload []byte, ingest int64) ([]edged.Reading, error) {
	name, ok := z2mDevice(topic)
	if !ok {
		return dst, nil
	}
	if e := d.precheckObject(topic, payload, "device state"); e != nil {
		return dst, e
	}
	st := getScratch()
	defer putScratch(st)
	var (
		p        problems
		n0       = len(dst)
		it       = &st.it
		env      = nameEnv{topic: topic, device: d.device}
		t        int64
		haveT    bool
		volt     = -1
		electric bool
	)
	it.reset(payload)
	for it.next() {
		if it.depth() != 1 { // nested objects (color, update, …) are not sensor values
			continue
		}
		f := &it.stack[0]
		key := f.key
		if f.esc {
			st.field = unescape(st.field[:0], f.key)
			key = append([]byte(nil), st.field...)
		}
		if string(key) == "last_seen" {
			var msg string
			if t, msg = z2mLastSeen(st); msg != "" {
				p.add(topic, ReasonBadTimestamp, "last_seen: "+msg)
			} else {
				haveT = true
			}
			continue
		}
		v, ok := d.leafValue(st, topic, &p, false)
		if !ok {
			continue
		}
		st.field = append(append(append(st.field[:0], name...), '/'), key...)
		env.field = st.field
		series, r, msg := d.seriesName(&st.name, &env)
		if r != "" {
			p.add(topic, r, msg)
			continue
		}
		q, _ := quantities[string(key)]
		switch string(key) {
		case "voltage":
			volt = len(dst)
		case "power", "current", "energy":
			electric = true
		}
		dst = append(dst, d.reading(series, q.Unit, v, ingest))
	}
	if it.err != "" {
		return dst[:n0], &Error{Reason: ReasonInvalidJSON, Topic: topic, Detail: it.errDetail()}
	}
	if volt >= 0 && electric { // a mains meter reports volts, a battery device millivolts
		dst[volt].Unit = "V"
	}
	stamp(dst[n0:], t, haveT)
	return dst, p.err()
}

// z2mLastSeen parses last_seen: epoch milliseconds, or ISO 8601 with a
// zone (Zigbee2MQTT's ISO_8601 and ISO_8601_local settings).
func z2mLastSeen(st *scratch) (int64, string) {
	it := &st.it
	switch it.kind {
	case jNumber:
		return parseUnix(it.raw, 1e6)
	case jString:
		raw := it.raw
		if it.esc {
			st.key = unescape(st.key[:0], raw)
			raw = st.key
		}
		return parseRFC3339(raw)
	}
	return 0, "holds " + it.kind.String()
}
