package payload

import (
	"math"
	"strconv"
	"time"

	"github.com/edged-io/edged"
)

// MaxFuture is how far ahead of the ingest clock a payload timestamp may
// be before its reading is flagged edged.TimeAbsurd.
const MaxFuture = 5 * time.Minute

// MinTime is the earliest plausible payload timestamp, 2020-01-01T00:00:00Z
// in nanoseconds since the epoch; earlier ones are flagged
// edged.TimeAbsurd. A device that sends 1970 has no clock.
const MinTime int64 = 1_577_836_800_000_000_000

// timeFlags qualifies a payload timestamp t received at ingest. The rule
// is relative to the ingest clock, which may itself be unsynchronised; the
// daemon flags ingest-stamped readings edged.ClockUnsynced when asked
// (clock.require_sync) and the aggregator re-checks.
func timeFlags(t, ingest int64) edged.Flags {
	if t < MinTime {
		return edged.TimeAbsurd
	}
	if ingest <= math.MaxInt64-int64(MaxFuture) && t > ingest+int64(MaxFuture) {
		return edged.TimeAbsurd
	}
	return 0
}

// stamp sets the event time of rs (the readings of one message or line):
// the payload time t when ok, else the ingest time.
func stamp(rs []edged.Reading, t int64, ok bool) {
	for i := range rs {
		r := &rs[i]
		if ok {
			r.Time, r.Flags = t, r.Flags|timeFlags(t, r.Ingest)
		} else {
			r.Time, r.Flags = r.Ingest, r.Flags|edged.TimeFromIngest
		}
	}
}

// scaleOf is the number of nanoseconds per unit of a Unix time format.
func scaleOf(f TimeFormat) int64 {
	switch f {
	case TimeUnixS:
		return 1e9
	case TimeUnixMS:
		return 1e6
	case TimeUnixUS:
		return 1e3
	}
	return 1
}

// parseUnix parses a Unix timestamp in the unit of scale (ns per unit):
// an integer exactly, a decimal fraction through float64.
func parseUnix(b []byte, scale int64) (int64, string) {
	if n, err := strconv.ParseInt(string(b), 10, 64); err == nil {
		if n > math.MaxInt64/scale || n < math.MinInt64/scale {
			return 0, quote(b) + " overflows a nanosecond timestamp"
		}
		return n * scale, ""
	}
	if !isDecimal(b) {
		return 0, quote(b) + " is not a Unix timestamp"
	}
	f, err := strconv.ParseFloat(string(b), 64)
	f *= float64(scale)
	if err != nil || math.IsNaN(f) || f >= math.MaxInt64 || f <= math.MinInt64 {
		return 0, quote(b) + " overflows a nanosecond timestamp"
	}
	return int64(f), ""
}

// parseRFC3339 parses an RFC 3339 timestamp with a zone offset.
func parseRFC3339(b []byte) (int64, string) {
	var t time.Time
	if err := t.UnmarshalText(b); err != nil {
		return 0, quote(b) + " is not an RFC 3339 time with a zone (e.g. 2024-01-01T12:00:00Z)"
	}
	return unixNano(t, b)
}

func unixNano(t time.Time, b []byte) (int64, string) {
	if y := t.Year(); y < 1678 || y > 2261 { // the range of int64 nanoseconds
		return 0, quote(b) + " is out of range"
	}
	return t.UnixNano(), ""
}
