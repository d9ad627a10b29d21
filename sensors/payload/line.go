package payload

import (
	"bytes"
	"strconv"

	"github.com/edged-io/edged"
)

// lineDecoder decodes InfluxDB line protocol, one point per line:
//
//	measurement[,tag=value…] field=value[,field=value…] [timestamp]
type lineDecoder struct {
	base
	scale int64 // ns per timestamp unit
}

// lineParts is the measurement and tags of the current line, as raw
// (escaped) slices of the payload.
type lineParts struct {
	meas   []byte
	tags   []tagKV
	sorted bool
}

type tagKV struct{ k, v []byte }

func (lp *lineParts) reset(meas []byte) {
	lp.meas = meas
	for i := range lp.tags {
		lp.tags[i] = tagKV{}
	}
	lp.tags = lp.tags[:0]
	lp.sorted = false
}

// Escapes: measurement names escape commas and spaces; tag keys, tag
// values and field keys also escape equals signs. A backslash before any
// other byte is literal.
const (
	measEscapes = ", "
	keyEscapes  = ",= "
)

// lpUnescape appends raw with the backslashes before escapable bytes removed.
func lpUnescape(dst, raw []byte, escapable string) []byte {
	for i := 0; i < len(raw); i++ {
		if raw[i] == '\\' && i+1 < len(raw) && isEscapable(raw[i+1], escapable) {
			i++
		}
		dst = append(dst, raw[i])
	}
	return dst
}

func isEscapable(c byte, set string) bool {
	for i := 0; i < len(set); i++ {
		if set[i] == c {
			return true
		}
	}
	return false
}

func (lp *lineParts) appendMeasurement(dst []byte) []byte {
	return lpUnescape(dst, lp.meas, measEscapes)
}

// appendTags appends ",k=v" for every tag, sorted by key.
func (lp *lineParts) appendTags(dst []byte) []byte {
	if !lp.sorted {
		t := lp.tags
		for i := 1; i < len(t); i++ { // insertion sort: a handful of tags
			for j := i; j > 0 && bytes.Compare(t[j].k, t[j-1].k) < 0; j-- {
				t[j], t[j-1] = t[j-1], t[j]
			}
		}
		lp.sorted = true
	}
	for _, t := range lp.tags {
		dst = append(dst, ',')
		dst = lpUnescape(dst, t.k, keyEscapes)
		dst = append(dst, '=')
		dst = lpUnescape(dst, t.v, keyEscapes)
	}
	return dst
}

// appendTag appends the value of tag key.
func (lp *lineParts) appendTag(dst []byte, key string) ([]byte, bool) {
	for _, t := range lp.tags {
		n := len(dst)
		dst = lpUnescape(dst, t.k, keyEscapes)
		if string(dst[n:]) == key {
			return lpUnescape(dst[:n], t.v, keyEscapes), true
		}
		dst = dst[:n]
	}
	return dst, false
}

func (d *lineDecoder) Decode(dst []edged.Reading, topic string, payload []byte, ingest int64) ([]edged.Reading, error) {
	if e := d.precheck(topic, payload); e != nil {
		return dst, e
	}
	st := getScratch()
	defer putScratch(st)
	var p problems
	n0 := len(dst)
	b := payload
	lineNo := 0
	for i := 0; i < len(b); {
		lineNo++
		for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\r') {
			i++
		}
		if i >= len(b) {
			break
		}
		if b[i] == '\n' {
			i++
			continue
		}
		if b[i] == '#' { // a comment
			i = lineEnd(b, i)
			continue
		}
		start := len(dst)
		next, at, msg := d.line(&dst, st, &p, topic, b, i, ingest)
		if msg != "" {
			dst = dst[:start]
			p.add(topic, ReasonLineSyntax, "line "+strconv.Itoa(lineNo)+", byte "+strconv.Itoa(at-i+1)+": "+msg)
			next = lineEnd(b, at)
		}
		i = next
	}
	if len(dst) == n0 && p.first == nil {
		p.add(topic, ReasonNoValues, "no numeric field (string fields are not values)")
	}
	return dst, p.err()
}

// lineEnd returns the index after the newline that ends the line holding i.
func lineEnd(b []byte, i int) int {
	if j := bytes.IndexByte(b[i:], '\n'); j >= 0 {
		return i + j + 1
	}
	return len(b)
}

// scanName scans a measurement, tag key, tag value or field key from i to
// the first unescaped byte in stops (or a line end). It returns its end.
func scanName(b []byte, i int, escapable, stops string) int {
	for i < len(b) {
		c := b[i]
		if c == '\\' && i+1 < len(b) && isEscapable(b[i+1], escapable) {
			i += 2
			continue
		}
		if c == '\n' || c == '\r' || isEscapable(c, stops) {
			return i
		}
		i++
	}
	return i
}

// line parses one line starting at i, appending its values to *dst. It
// returns the index after the line, or the index and description of a
// syntax error.
func (d *lineDecoder) line(dst *[]edged.Reading, st *scratch, p *problems, topic string, b []byte, i int, ingest int64) (next, at int, msg string) {
	start := len(*dst)
	lp := &st.line
	j := scanName(b, i, measEscapes, ", ")
	if j == i {
		return 0, i, "missing measurement"
	}
	lp.reset(b[i:j])
	for j < len(b) && b[j] == ',' {
		k := j + 1
		e := scanName(b, k, keyEscapes, ",= ")
		if e == k || e >= len(b) || b[e] != '=' {
			return 0, e, "want tag=value after ','"
		}
		v := e + 1
		ve := scanName(b, v, keyEscapes, ", ")
		if ve == v {
			return 0, ve, "empty tag value"
		}
		lp.tags = append(lp.tags, tagKV{k: b[k:e], v: b[v:ve]})
		j = ve
	}
	if j >= len(b) || b[j] != ' ' {
		return 0, j, "want a space and fields after the measurement and tags"
	}
	for j < len(b) && b[j] == ' ' {
		j++
	}
	env := nameEnv{topic: topic, device: d.device, line: lp}
	for fields := 0; ; fields++ {
		k := j
		e := scanName(b, k, keyEscapes, ",= ")
		if e == k || e >= len(b) || b[e] != '=' {
			if fields == 0 {
				return 0, e, "want field=value"
			}
			return 0, e, "want field=value after ','"
		}
		j = e + 1
		if j < len(b) && b[j] == '"' { // a string field: skipped
			j++
			for j < len(b) && b[j] != '"' {
				if b[j] == '\\' && j+1 < len(b) {
					j++
				}
				j++
			}
			if j >= len(b) {
				return 0, j, "unterminated string field value"
			}
			j++
		} else {
			ve := j
			for ve < len(b) && b[ve] != ',' && b[ve] != ' ' && b[ve] != '\n' && b[ve] != '\r' {
				ve++
			}
			v, use, overflow, why := d.fieldValue(b[j:ve])
			if why != "" {
				return 0, j, why
			}
			j = ve
			if use {
				st.field = lpUnescape(st.field[:0], b[k:e], keyEscapes)
				env.field = st.field
				series, r, msg := d.seriesName(&st.name, &env)
				if r != "" {
					p.add(topic, r, msg)
				} else {
					*dst = append(*dst, d.reading(series, "", v, ingest))
				}
			} else if overflow {
				p.add(topic, ReasonNonFinite, "field "+quote(b[k:e])+": "+quote(b[e+1:ve])+" is outside the float64 range")
			}
		}
		if j < len(b) && b[j] == ',' {
			j++
			continue
		}
		break
	}
	// Optional timestamp, then the end of the line.
	for j < len(b) && b[j] == ' ' {
		j++
	}
	ts, haveTS := int64(0), false
	if j < len(b) && b[j] != '\n' && b[j] != '\r' {
		e := j
		for e < len(b) && b[e] != ' ' && b[e] != '\n' && b[e] != '\r' {
			e++
		}
		raw := b[j:e]
		if n, err := strconv.ParseInt(string(raw), 10, 64); err == nil {
			if n > maxInt64/d.scale || n < -maxInt64/d.scale {
				p.add(topic, ReasonBadTimestamp, "timestamp "+quote(raw)+" overflows nanoseconds at this precision")
			} else {
				ts, haveTS = n*d.scale, true
			}
		} else if isInteger(raw) {
			p.add(topic, ReasonBadTimestamp, "timestamp "+quote(raw)+" overflows int64")
		} else {
			return 0, j, "timestamp " + quote(raw) + " is not an integer"
		}
		j = e
		for j < len(b) && (b[j] == ' ' || b[j] == '\t') {
			j++
		}
	}
	if j < len(b) && b[j] == '\r' {
		j++
	}
	if j < len(b) && b[j] != '\n' {
		return 0, j, "unexpected " + quote(b[j:min(j+8, len(b))]) + " at the end of the line"
	}
	stamp((*dst)[start:], ts, haveTS)
	return min(j+1, len(b)), 0, ""
}

const maxInt64 = 1<<63 - 1

func isInteger(b []byte) bool {
	if len(b) > 0 && b[0] == '-' {
		b = b[1:]
	}
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// fieldValue parses a field value that is not a string. use is false for
// a boolean that is not wanted and for a float out of range (overflow).
// why describes a syntax error.
func (d *lineDecoder) fieldValue(b []byte) (v float64, use, overflow bool, why string) {
	if len(b) == 0 {
		return 0, false, false, "missing field value"
	}
	switch b[len(b)-1] {
	case 'i':
		n, err := strconv.ParseInt(string(b[:len(b)-1]), 10, 64)
		if err != nil {
			return 0, false, false, "bad integer field value " + quote(b)
		}
		return float64(n), true, false, ""
	case 'u':
		n, err := strconv.ParseUint(string(b[:len(b)-1]), 10, 64)
		if err != nil {
			return 0, false, false, "bad unsigned field value " + quote(b)
		}
		return float64(n), true, false, ""
	}
	switch string(b) {
	case "t", "T", "true", "True", "TRUE":
		return 1, d.booleans, false, ""
	case "f", "F", "false", "False", "FALSE":
		return 0, d.booleans, false, ""
	}
	v, r, _ := parseDecimal(b)
	switch {
	case r == "":
		return v, true, false, ""
	case r == ReasonNonFinite && isDecimal(b):
		return 0, false, true, ""
	}
	return 0, false, false, "bad field value " + quote(b) + " (want a float, 1i, 1u, a boolean or a \"string\")"
}
