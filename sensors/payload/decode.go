package payload

import (
	"strconv"

	"github.com/edged-io/edged"
)

// numberDecoder decodes payloads that are one decimal number.
type numberDecoder struct{ base }

func (d *numberDecoder) Decode(dst []edged.Reading, topic string, payload []byte, ingest int64) ([]edged.Reading, error) {
	if e := d.precheck(topic, payload); e != nil {
		return dst, e
	}
	v, r, msg := parseTextNumber(payload)
	if r != "" {
		return dst, &Error{Reason: r, Detail: msg, Topic: topic}
	}
	st := getScratch()
	defer putScratch(st)
	return d.appendOne(dst, st, topic, nil, "", v, ingest)
}

// appendOne appends one reading stamped with the ingest time.
func (d *base) appendOne(dst []edged.Reading, st *scratch, topic string, field []byte, unit string, v float64, ingest int64) ([]edged.Reading, error) {
	env := nameEnv{topic: topic, device: d.device, field: field}
	series, r, msg := d.seriesName(&st.name, &env)
	if r != "" {
		return dst, &Error{Reason: r, Detail: msg, Topic: topic}
	}
	dst = append(dst, d.reading(series, unit, v, ingest))
	stamp(dst[len(dst)-1:], 0, false)
	return dst, nil
}

// jsonDecoder decodes JSON documents by field paths, or every numeric leaf.
type jsonDecoder struct {
	base
	fields   []jsonField
	timePath []step
	timeFmt  TimeFormat
}

func (d *jsonDecoder) Decode(dst []edged.Reading, topic string, payload []byte, ingest int64) ([]edged.Reading, error) {
	if e := d.precheck(topic, payload); e != nil {
		return dst, e
	}
	st := getScratch()
	defer putScratch(st)
	n0 := len(dst)
	found := st.found[:0]
	for range d.fields {
		found = append(found, -1)
	}
	st.found = found
	var (
		p     problems
		t     int64
		haveT bool
		it    = &st.it
		env   = nameEnv{topic: topic, device: d.device}
	)
	it.reset(payload)
	for it.next() {
		if d.timePath != nil && it.matches(d.timePath, &st.key) {
			var msg string
			t, msg = d.parseTime(st)
			haveT = msg == ""
			if msg != "" {
				p.add(topic, ReasonBadTimestamp, "time "+strconv.Quote(pathName(d.timePath))+": "+msg)
			}
			continue
		}
		if len(d.fields) == 0 {
			v, ok := d.leafValue(st, topic, &p, false)
			if !ok {
				continue
			}
			st.field = appendPath(st.field[:0], it.stack)
			if len(it.stack) == 0 {
				st.field = append(st.field, "value"...)
			}
			env.field = st.field
			series, r, msg := d.seriesName(&st.name, &env)
			if r != "" {
				p.add(topic, r, msg)
				continue
			}
			dst = append(dst, d.reading(series, "", v, ingest))
			continue
		}
		for i := range d.fields {
			f := &d.fields[i]
			if !it.matches(f.steps, &st.key) {
				continue
			}
			v, ok := d.leafValue(st, topic, &p, true)
			if !ok {
				if found[i] == -1 {
					found[i] = -2 // present but rejected: not missing
				}
				break
			}
			if j := found[i]; j >= 0 { // a repeated key: the last one wins, as in encoding/json
				dst[j].Value = v
				break
			}
			st.field = append(st.field[:0], f.name...)
			env.field = st.field
			series, r, msg := d.seriesName(&st.name, &env)
			if r != "" {
				p.add(topic, r, msg)
				found[i] = -2
				break
			}
			found[i] = len(dst)
			dst = append(dst, d.reading(series, f.unit, v, ingest))
			break
		}
	}
	if it.err != "" {
		return dst[:n0], &Error{Reason: ReasonInvalidJSON, Topic: topic, Detail: it.errDetail()}
	}
	for i := range d.fields {
		if found[i] == -1 {
			p.add(topic, ReasonMissingField, "no number, string or boolean at path "+strconv.Quote(d.fields[i].path))
		}
	}
	stamp(dst[n0:], t, haveT)
	if len(dst) == n0 && p.first == nil {
		p.add(topic, ReasonNoValues, "the document has no numeric value")
	}
	return dst, p.err()
}

// leafValue converts the iterator's current leaf to a value. A number that
// does not fit a float64 is always reported to p; other leaves that are
// not values are reported only when strict (a configured field), and
// otherwise skipped quietly.
func (d *base) leafValue(st *scratch, topic string, p *problems, strict bool) (float64, bool) {
	it := &st.it
	var (
		r   Reason
		msg string
	)
	switch it.kind {
	case jNumber:
		var v float64
		if v, r, msg = parseDecimal(it.raw); r == "" {
			return v, true
		}
	case jTrue, jFalse:
		if d.booleans {
			if it.kind == jTrue {
				return 1, true
			}
			return 0, true
		}
		if !strict {
			return 0, false
		}
		r, msg = ReasonNotNumeric, "holds a boolean"
	case jString:
		if !d.strings && !strict {
			return 0, false
		}
		raw := it.raw
		if it.esc {
			st.key = unescape(st.key[:0], raw)
			raw = st.key
		}
		if d.strings {
			var v float64
			if v, r, msg = parseTextNumber(raw); r == "" {
				return v, true
			}
			if r != ReasonNonFinite && !strict {
				return 0, false
			}
		}
		if r != ReasonNonFinite {
			r, msg = ReasonNotNumeric, "holds the string "+quote(raw)
		}
	default:
		if !strict {
			return 0, false
		}
		r, msg = ReasonNotNumeric, "holds null"
	}
	p.add(topic, r, "field "+strconv.Quote(string(appendPath(nil, it.stack)))+": "+msg)
	return 0, false
}

// parseTime parses the current leaf as the configured timestamp.
func (d *jsonDecoder) parseTime(st *scratch) (int64, string) {
	it := &st.it
	raw := it.raw
	switch it.kind {
	case jString:
		if it.esc {
			st.key = unescape(st.key[:0], raw)
			raw = st.key
		}
	case jNumber:
		if d.timeFmt == TimeRFC3339 {
			return 0, "holds a number, want an RFC 3339 string"
		}
	default:
		return 0, "holds " + it.kind.String() + ", want a timestamp"
	}
	if d.timeFmt == TimeRFC3339 {
		return parseRFC3339(raw)
	}
	return parseUnix(trimSpace(raw), scaleOf(d.timeFmt))
}
