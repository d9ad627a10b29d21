package payload

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/edged-io/edged"
)

// Decoder turns one MQTT message into readings, appended to dst. It must
// not retain payload. Decoders are safe for concurrent use.
//
// Whatever Decode appends is good data, even when it also returns an
// error: a message with some good values and some bad ones yields the good
// readings and one *Error describing the first problem. A syntax error in
// a JSON document rejects the whole message (a truncated document can end
// in a truncated number); in line protocol it rejects only its line.
// Decode may return no readings and a nil error for a message a preset
// deliberately ignores (see the package doc).
type Decoder interface {
	Decode(dst []edged.Reading, topic string, payload []byte, ingest int64) ([]edged.Reading, error)
}

// Format names a payload format.
type Format string

// The payload formats.
const (
	FormatNumber      Format = "number"
	FormatJSON        Format = "json"
	FormatLine        Format = "line"
	FormatZigbee2MQTT Format = "zigbee2mqtt"
	FormatTasmota     Format = "tasmota"
	FormatShelly      Format = "shelly"
	FormatESPHome     Format = "esphome"
)

var formats = []Format{FormatNumber, FormatJSON, FormatLine, FormatZigbee2MQTT, FormatTasmota, FormatShelly, FormatESPHome}

// TimeFormat says how a payload timestamp is written.
type TimeFormat string

// The timestamp formats. The Unix ones accept integers and decimal
// fractions, as JSON numbers or as strings.
const (
	TimeUnixS   TimeFormat = "unix_s"
	TimeUnixMS  TimeFormat = "unix_ms"
	TimeUnixUS  TimeFormat = "unix_us"
	TimeUnixNS  TimeFormat = "unix_ns"
	TimeRFC3339 TimeFormat = "rfc3339" // with a zone: 2024-01-01T12:00:00Z, …+01:00
)

// DefaultMaxPayload is the default Config.MaxPayload: 256 KiB.
const DefaultMaxPayload = 256 << 10

// maxFields bounds Config.Fields.
const maxFields = 256

// Config selects and parameterises a decoder for one subscription. The
// zero value decodes plain numbers into a series named after the topic.
type Config struct {
	// Format of the payloads: number (default), json, line, zigbee2mqtt,
	// tasmota, shelly or esphome.
	Format Format `yaml:"format"`
	// Series is the template of the series name. Placeholders: {topic};
	// {1}, {2}, … the topic's segments from the first, {-1}, {-2}, … from
	// the last; {device}; {field}, the value's name within the payload
	// (json, line, presets); and for line only {measurement}, {tags} and
	// {tag:KEY}. Defaults: number "{topic}", json "{topic}/{field}",
	// line "{measurement}{tags}/{field}", presets "{field}".
	Series string `yaml:"series"`
	// Fields (json only) lists the values to take. Without fields, every
	// numeric leaf of the document is a value, named by its path.
	Fields []Field `yaml:"fields"`
	// Time (json: path and format; line: format only, the precision of
	// the timestamp, default unix_ns) says where the event time is. Without
	// it, readings take the ingest time.
	Time TimeSpec `yaml:"time"`
	// Unit is the unit of values for which the format knows none.
	Unit string `yaml:"unit"`
	// Device overrides the daemon's device id for these readings.
	Device string `yaml:"device"`
	// Booleans makes true/false values 1/0 (json, line, zigbee2mqtt;
	// ON/OFF binary sensors for esphome). Otherwise they are skipped, or
	// rejected as not_numeric when a configured json field holds one.
	Booleans bool `yaml:"booleans"`
	// Strings (json only) accepts strings that hold a decimal number,
	// such as "21.5".
	Strings bool `yaml:"strings"`
	// Timezone (tasmota only) is the IANA zone of the devices' clocks,
	// e.g. "Europe/Berlin": Tasmota writes local time without a zone.
	// Without it, Tasmota readings take the ingest time.
	Timezone string `yaml:"timezone"`
	// MaxPayload rejects larger payloads before parsing. Default
	// DefaultMaxPayload.
	MaxPayload int `yaml:"max_payload"`
}

// Field is one value of a JSON payload.
type Field struct {
	// Path to the value: keys separated by dots, array indexes in
	// brackets, keys with dots quoted: `a.b[0].c`, `sensors["t.1"]`.
	Path string `yaml:"path"`
	// Series is the value's name, the {field} of the series template.
	// Default: the path with its steps joined by "/" (a/b/0/c).
	Series string `yaml:"series"`
	// Unit of the value; default Config.Unit.
	Unit string `yaml:"unit"`
}

// TimeSpec locates and parses a payload's event time.
type TimeSpec struct {
	// Path of the timestamp in a JSON payload (json only).
	Path string `yaml:"path"`
	// Format: unix_s, unix_ms, unix_us, unix_ns or rfc3339.
	Format TimeFormat `yaml:"format"`
}

// Validate reports every problem of c, each prefixed by its YAML key.
func (c *Config) Validate() error {
	_, err := c.compile()
	return err
}

// compiled is a validated Config.
type compiled struct {
	format   Format
	series   template
	fields   []jsonField
	timePath []step
	timeFmt  TimeFormat
	loc      *time.Location
	max      int
}

type jsonField struct {
	steps []step
	name  string // {field}
	unit  string
	path  string
}

func (c *Config) compile() (*compiled, error) {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("payload: %s: %s", key, fmt.Sprintf(format, args...)))
	}
	k := &compiled{format: c.Format, max: c.MaxPayload}
	if k.format == "" {
		k.format = FormatNumber
	}
	if !slices.Contains(formats, k.format) {
		bad("format", "unknown format %q (want number, json, line, zigbee2mqtt, tasmota, shelly or esphome)", c.Format)
		return nil, errors.Join(errs...)
	}
	json, line := k.format == FormatJSON, k.format == FormatLine
	preset := !json && !line && k.format != FormatNumber

	src := c.Series
	if src == "" {
		src = map[Format]string{FormatNumber: "{topic}", FormatJSON: "{topic}/{field}", FormatLine: "{measurement}{tags}/{field}"}[k.format]
		if preset {
			src = "{field}"
		}
	}
	var err error
	if k.series, err = parseTemplate(src, k.format != FormatNumber, line); err != nil {
		bad("series", "%q: %v", src, err)
	}

	if k.series.parts != nil && !k.series.has(pField) && (line || preset || (json && len(c.Fields) != 1)) {
		bad("series", "%q has no {field}: the values of one message would share one series name", src)
	}
	if len(c.Fields) > 0 && !json {
		bad("fields", "fields are for format json (%s decodes its own fields)", k.format)
	}
	if len(c.Fields) > maxFields {
		bad("fields", "%d fields (limit %d)", len(c.Fields), maxFields)
	}
	for i, f := range c.Fields {
		key := "fields[" + strconv.Itoa(i) + "]"
		steps, err := parsePath(f.Path)
		if err != nil {
			bad(key+".path", "%v", err)
			continue
		}
		jf := jsonField{steps: steps, name: f.Series, unit: f.Unit, path: f.Path}
		if jf.name == "" {
			jf.name = pathName(steps)
		}
		if msg := badName(jf.name); msg != "" {
			bad(key+".series", "%s", msg)
		}
		if jf.unit == "" {
			jf.unit = c.Unit
		}
		if msg := badLabel(f.Unit); msg != "" {
			bad(key+".unit", "%s", msg)
		}
		for j := range k.fields {
			if slices.Equal(k.fields[j].steps, steps) {
				bad(key+".path", "%q repeats the path of an earlier field", f.Path)
			}
		}
		k.fields = append(k.fields, jf)
	}

	k.timeFmt = c.Time.Format
	switch {
	case json:
		if (c.Time.Path == "") != (c.Time.Format == "") {
			bad("time", "give both path and format, or neither")
		}
		if c.Time.Path != "" {
			if k.timePath, err = parsePath(c.Time.Path); err != nil {
				bad("time.path", "%v", err)
			}
			for i := range k.fields {
				if slices.Equal(k.fields[i].steps, k.timePath) {
					bad("time.path", "%q is also fields[%d].path", c.Time.Path, i)
				}
			}
		}
		if c.Time.Format != "" && !slices.Contains([]TimeFormat{TimeUnixS, TimeUnixMS, TimeUnixUS, TimeUnixNS, TimeRFC3339}, c.Time.Format) {
			bad("time.format", "unknown format %q (want unix_s, unix_ms, unix_us, unix_ns or rfc3339)", c.Time.Format)
		}
	case line:
		if c.Time.Path != "" {
			bad("time.path", "line protocol has its timestamp at the end of the line; give only time.format")
		}
		if k.timeFmt == "" {
			k.timeFmt = TimeUnixNS
		}
		if !slices.Contains([]TimeFormat{TimeUnixS, TimeUnixMS, TimeUnixUS, TimeUnixNS}, k.timeFmt) {
			bad("time.format", "%q is not a line-protocol precision (want unix_s, unix_ms, unix_us or unix_ns)", c.Time.Format)
		}
	default:
		if c.Time != (TimeSpec{}) {
			bad("time", "time is for formats json and line (%s finds its own timestamps)", k.format)
		}
	}

	if c.Timezone != "" {
		if k.format != FormatTasmota {
			bad("timezone", "timezone is for format tasmota")
		} else if k.loc, err = time.LoadLocation(c.Timezone); err != nil {
			bad("timezone", "%v", err)
		}
	}
	if c.Booleans && k.format != FormatJSON && k.format != FormatLine && k.format != FormatZigbee2MQTT && k.format != FormatESPHome {
		bad("booleans", "booleans is for formats json, line, zigbee2mqtt and esphome")
	}
	if c.Strings && !json {
		bad("strings", "strings is for format json")
	}
	if msg := badLabel(c.Unit); msg != "" {
		bad("unit", "%s", msg)
	}
	if msg := badLabel(c.Device); msg != "" {
		bad("device", "%s", msg)
	}
	switch {
	case c.MaxPayload < 0:
		bad("max_payload", "negative size %d", c.MaxPayload)
	case c.MaxPayload == 0:
		k.max = DefaultMaxPayload
	case c.MaxPayload > 256<<20: // MQTT's own limit
		bad("max_payload", "%d bytes is more than MQTT allows (256 MiB)", c.MaxPayload)
	}
	return k, errors.Join(errs...)
}

// badLabel checks a unit or device id, which may be empty.
func badLabel(s string) string {
	if s == "" {
		return ""
	}
	return badName(s)
}

// New returns the decoder c describes. device is the daemon's device id,
// used unless c.Device is set.
func New(c Config, device string) (Decoder, error) {
	k, err := c.compile()
	if err != nil {
		return nil, err
	}
	if c.Device != "" {
		device = c.Device
	}
	if msg := badName(device); msg != "" {
		return nil, fmt.Errorf("payload: device id: %s", msg)
	}
	b := base{device: device, unit: c.Unit, series: k.series, names: new(names), max: k.max,
		booleans: c.Booleans, strings: c.Strings}
	switch k.format {
	case FormatJSON:
		return &jsonDecoder{base: b, fields: k.fields, timePath: k.timePath, timeFmt: k.timeFmt}, nil
	case FormatLine:
		return &lineDecoder{base: b, scale: scaleOf(k.timeFmt)}, nil
	case FormatZigbee2MQTT:
		return &z2mDecoder{base: b}, nil
	case FormatTasmota:
		return &tasmotaDecoder{base: b, loc: k.loc}, nil
	case FormatShelly:
		return &shellyDecoder{base: b}, nil
	case FormatESPHome:
		return &esphomeDecoder{base: b}, nil
	}
	return &numberDecoder{base: b}, nil
}

// base is what every decoder shares.
type base struct {
	device   string
	unit     string
	series   template
	names    *names
	max      int
	booleans bool
	strings  bool
}

// precheckObject is precheck for the presets whose payload must be a JSON
// object; what names the object in the error ("device state", …).
func (d *base) precheckObject(topic string, p []byte, what string) *Error {
	if e := d.precheck(topic, p); e != nil {
		return e
	}
	if firstByte(p) != '{' {
		return &Error{Reason: ReasonInvalidJSON, Topic: topic, Detail: "want a JSON object of " + what + ", got " + quote(p)}
	}
	return nil
}

// precheck rejects oversized and empty payloads.
func (d *base) precheck(topic string, p []byte) *Error {
	if len(p) > d.max {
		return &Error{Reason: ReasonTooLarge, Topic: topic,
			Detail: fmt.Sprintf("payload of %d bytes (limit %d)", len(p), d.max)}
	}
	if len(trimSpace(p)) == 0 {
		return &Error{Reason: ReasonEmpty, Topic: topic, Detail: fmt.Sprintf("payload of %d bytes holds nothing", len(p))}
	}
	return nil
}

// reading is a reading of this decoder's device; Time is set by stamp.
func (d *base) reading(series, unit string, v float64, ingest int64) edged.Reading {
	if unit == "" {
		unit = d.unit
	}
	return edged.Reading{Device: d.device, Series: series, Unit: unit, Value: v, Ingest: ingest}
}

// scratch is per-call working memory, pooled so that decoding allocates
// nothing in the steady state.
type scratch struct {
	it    jsonIter
	name  []byte
	key   []byte
	field []byte
	found []int
	line  lineParts
	marks []mark
}

var scratchPool = sync.Pool{New: func() any { return new(scratch) }}

func getScratch() *scratch { return scratchPool.Get().(*scratch) }

func putScratch(s *scratch) {
	s.it.b, s.it.raw = nil, nil // do not keep the payload reachable
	for i := range s.it.stack {
		s.it.stack[i].key = nil
	}
	s.line.reset(nil)
	scratchPool.Put(s)
}
