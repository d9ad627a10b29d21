package payload

import (
	"strings"

	"github.com/edged-io/edged"
)

// esphomeDecoder decodes ESPHome's MQTT state topics:
// <prefix>/sensor/<name>/state with one number, and, with booleans,
// <prefix>/binary_sensor/<name>/state with ON or OFF.
type esphomeDecoder struct{ base }

func (d *esphomeDecoder) Decode(dst []edged.Reading, topic string, payload []byte, ingest int64) ([]edged.Reading, error) {
	rest, ok := strings.CutSuffix(topic, "/state")
	if !ok {
		return dst, nil
	}
	i := strings.LastIndexByte(rest, '/')
	if i <= 0 {
		return dst, nil
	}
	name, rest := rest[i+1:], rest[:i]
	j := strings.LastIndexByte(rest, '/')
	if j <= 0 || name == "" {
		return dst, nil
	}
	kind, prefix := rest[j+1:], rest[:j]
	var v float64
	switch {
	case kind == "sensor":
		if e := d.precheck(topic, payload); e != nil {
			return dst, e
		}
		var r Reason
		var msg string
		if v, r, msg = parseTextNumber(payload); r != "" {
			return dst, &Error{Reason: r, Detail: msg, Topic: topic}
		}
	case kind == "binary_sensor" && d.booleans:
		if e := d.precheck(topic, payload); e != nil {
			return dst, e
		}
		if v, ok = parseBool(trimSpace(payload)); !ok {
			return dst, &Error{Reason: ReasonNotNumeric, Topic: topic, Detail: quote(payload) + " is not ON or OFF"}
		}
	default:
		return dst, nil
	}
	st := getScratch()
	defer putScratch(st)
	st.field = append(append(append(st.field[:0], prefix...), '/'), name...)
	q, _ := QuantityOf(name)
	return d.appendOne(dst, st, topic, st.field, q.Unit, v, ingest)
}
