package ship

import (
	"math"
	"strconv"
	"time"

	"github.com/edged-io/edged"
	"github.com/edged-io/edged/aggregate"
	"github.com/edged-io/edged/aggregate/view"
)

// Measurement names (see the package documentation).
const (
	mReading   = "edged_reading"
	mUntrusted = "edged_untrusted"
	mWindow    = "edged_window"
	mGap       = "edged_gap"
	mProgress  = "edged_progress"
)

// The range of timestamps InfluxDB accepts.
const (
	minTime = math.MinInt64 + 2
	maxTime = math.MaxInt64 - 1
)

// Reasons a point is refused before it is sent.
const (
	badName = "a device, series or unit name cannot be written as line protocol (control character, empty, or a backslash before a separator)"
	badTime = "timestamp outside InfluxDB's range"
)

// encoder writes points as line protocol, one line per point. It caches
// the escaped tag set of every (device, series) pair and every unit, so a
// steady stream of readings costs no allocation.
type encoder struct {
	device, view string
	alpha        float64
	untrusted    func(*edged.Reading) bool

	tags    map[[2]string]string // {device, series} → "device=…,series=…" or "" if unrepresentable
	units   map[string]string    // unit → `,unit="…"` or "\x00" if unrepresentable
	windows map[time.Duration]string
}

func newEncoder(o *Options) *encoder {
	return &encoder{device: o.Device, view: o.View, alpha: o.Alpha, untrusted: o.Untrusted,
		tags: map[[2]string]string{}, units: map[string]string{}, windows: map[time.Duration]string{}}
}

// tagSet returns the escaped "device=…,series=…", or false when a name
// cannot be a tag value.
func (e *encoder) tagSet(device, series string) (string, bool) {
	if device == "" {
		device = e.device
	}
	k := [2]string{device, series}
	ts, ok := e.tags[k]
	if !ok {
		if tagSafe(device) && tagSafe(series) {
			var b []byte
			b = append(b, "device="...)
			b = appendTag(b, device)
			b = append(b, ",series="...)
			b = appendTag(b, series)
			ts = string(b)
		}
		e.tags[k] = ts
	}
	return ts, ts != ""
}

// unitField returns `,unit="…"` (empty for no unit), or false when the unit
// cannot be a string field.
func (e *encoder) unitField(unit string) (string, bool) {
	if unit == "" {
		return "", true
	}
	f, ok := e.units[unit]
	if !ok {
		f = "\x00"
		if stringSafe(unit) {
			b := appendStringField([]byte(`,unit="`), unit)
			f = string(append(b, '"'))
		}
		e.units[unit] = f
	}
	return f, f != "\x00"
}

// reading appends r as a point and reports whether it went to
// edged_untrusted. A reading that cannot be written is appended to rej
// (with the reason) instead; ok is then false.
func (e *encoder) reading(b *batch, r *edged.Reading) (untrusted, ok bool) {
	untrusted = r.Flags.Untrusted() || (e.untrusted != nil && e.untrusted(r))
	m := mReading
	if untrusted {
		m = mUntrusted
	}
	tags, okTags := e.tagSet(r.Device, r.Series)
	unit, okUnit := e.unitField(r.Unit)
	start := len(b.buf)
	buf := append(b.buf, m...)
	buf = append(buf, ',')
	buf = append(buf, tags...)
	buf = append(buf, " value="...)
	buf = strconv.AppendFloat(buf, r.Value, 'g', -1, 64)
	buf = append(buf, unit...)
	buf = append(buf, ",lsn="...)
	buf = strconv.AppendUint(buf, r.LSN, 10)
	buf = append(buf, "i,ingest="...)
	buf = strconv.AppendInt(buf, r.Ingest, 10)
	buf = append(buf, "i,flags="...)
	buf = strconv.AppendUint(buf, uint64(r.Flags), 10)
	buf = append(buf, "i "...)
	buf = strconv.AppendInt(buf, r.Time, 10)
	buf = append(buf, '\n')
	b.buf = buf
	switch {
	case !okTags || !okUnit:
		b.refuse(start, badName+": device "+strconv.Quote(r.Device)+", series "+strconv.Quote(r.Series)+", unit "+strconv.Quote(r.Unit))
		return untrusted, false
	case r.Time < minTime || r.Time > maxTime:
		b.refuse(start, badTime)
		return untrusted, false
	}
	b.ends = append(b.ends, len(b.buf))
	return untrusted, true
}

// row appends a window row as a point (false if it cannot be written).
func (e *encoder) row(b *batch, r *view.Row) bool {
	tags, okTags := e.tagSet(r.Device, r.Series)
	unit, okUnit := e.unitField(r.Unit)
	win, ok := e.windows[r.Size]
	if !ok {
		win = aggregate.SizeName(r.Size)
		e.windows[r.Size] = win
	}
	start := len(b.buf)
	buf := append(b.buf, mWindow...)
	buf = append(buf, ',')
	buf = append(buf, tags...)
	buf = append(buf, ",view="...)
	buf = appendTag(buf, e.view)
	buf = append(buf, ",window="...)
	buf = append(buf, win...)
	sep := byte(' ')
	for i, v := range r.Values {
		if i >= len(view.Fields) || math.IsNaN(v) || math.IsInf(v, 0) {
			continue
		}
		buf = append(buf, sep)
		sep = ','
		buf = append(buf, view.Fields[i]...)
		buf = append(buf, '=')
		buf = strconv.AppendFloat(buf, v, 'g', -1, 64)
	}
	buf = append(buf, sep)
	buf = append(buf, "alpha="...)
	buf = strconv.AppendFloat(buf, e.alpha, 'g', -1, 64)
	buf = append(buf, ",end="...)
	buf = strconv.AppendInt(buf, r.End, 10)
	buf = append(buf, 'i')
	buf = append(buf, unit...)
	buf = append(buf, ' ')
	buf = strconv.AppendInt(buf, r.Start, 10)
	buf = append(buf, '\n')
	b.buf = buf
	switch {
	case !okTags || !okUnit:
		b.refuse(start, badName+": device "+strconv.Quote(r.Device)+", series "+strconv.Quote(r.Series)+", unit "+strconv.Quote(r.Unit))
		return false
	case r.Start < minTime || r.Start > maxTime:
		b.refuse(start, badTime)
		return false
	}
	b.ends = append(b.ends, len(b.buf))
	return true
}

// gap appends a gap point for the missing records from..to.
func (e *encoder) gap(b *batch, from, to uint64, noticed int64) {
	buf := append(b.buf, mGap...)
	buf = append(buf, ",device="...)
	buf = appendTag(buf, e.device)
	buf = append(buf, " to_lsn="...)
	buf = strconv.AppendUint(buf, to, 10)
	buf = append(buf, "i,count="...)
	buf = strconv.AppendUint(buf, to-from+1, 10)
	buf = append(buf, "i,noticed="...)
	buf = strconv.AppendInt(buf, noticed, 10)
	buf = append(buf, "i "...)
	buf = strconv.AppendUint(buf, min(from, maxTime), 10)
	b.buf = append(buf, '\n')
	b.ends = append(b.ends, len(b.buf))
}

// progress is what a progress point claims; a negative windows or
// through is left out (a point with fewer fields keeps the stored values
// of the others, which were true and only grow).
type progress struct {
	readings         uint64
	windows, through int64
}

// progressLine appends the progress point.
func (e *encoder) progressLine(dst []byte, p progress, updated int64) []byte {
	dst = append(dst, mProgress...)
	dst = append(dst, ",device="...)
	dst = appendTag(dst, e.device)
	dst = append(dst, " readings_lsn="...)
	dst = strconv.AppendUint(dst, p.readings, 10)
	dst = append(dst, 'i')
	if p.windows >= 0 {
		dst = append(dst, ",windows_lsn="...)
		dst = strconv.AppendInt(dst, p.windows, 10)
		dst = append(dst, 'i')
	}
	if p.through >= 0 {
		dst = append(dst, ",through_lsn="...)
		dst = strconv.AppendInt(dst, p.through, 10)
		dst = append(dst, 'i')
	}
	dst = append(dst, ",updated="...)
	dst = strconv.AppendInt(dst, updated, 10)
	return append(dst, "i 0\n"...)
}

// tagSafe reports whether s can be a tag value: line protocol has no
// escape for a backslash, so one at the end or before a separator would
// escape it, and there is none for control characters.
func tagSafe(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c < 0x20 || c == 0x7f:
			return false
		case c == '\\' && (i+1 == len(s) || s[i+1] == ',' || s[i+1] == '=' || s[i+1] == ' '):
			return false
		}
	}
	return true
}

// stringSafe reports whether s can be a string field value.
func stringSafe(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f {
			return false
		}
	}
	return true
}

func appendTag(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case ',', '=', ' ':
			dst = append(dst, '\\', c)
		default:
			dst = append(dst, c)
		}
	}
	return dst
}

func appendStringField(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		default:
			dst = append(dst, c)
		}
	}
	return dst
}
