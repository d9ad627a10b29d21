package scripttest

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/edged-io/edged"
)

// T0 is the time script offsets count from, 2026-01-01T00:00:00Z, in
// nanoseconds since the Unix epoch.
const T0 int64 = 1_767_225_600 * int64(time.Second)

// ParseTime reads a script time: an offset from T0 as a Go duration (12s,
// -3s, 1h0m5s) or an RFC 3339 time.
func ParseTime(s string) (int64, error) {
	if d, err := time.ParseDuration(s); err == nil {
		return T0 + int64(d), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return 0, fmt.Errorf("time %q: neither a duration nor RFC 3339", s)
	}
	return t.UnixNano(), nil
}

// FormatTime prints a time as ParseTime reads it: as an offset from T0
// when that is within 1000 hours, else in RFC 3339.
func FormatTime(ns int64) string {
	if off := ns - T0; off > -1000*int64(time.Hour) && off < 1000*int64(time.Hour) {
		return time.Duration(off).String()
	}
	return time.Unix(0, ns).UTC().Format(time.RFC3339Nano)
}

// FormatFloat prints f in the shortest form that reads back the same.
func FormatFloat(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

// ParseReading reads the fields of a read command:
//
//	read LSN DEVICE SERIES TIME VALUE [unit=U] [ingest=TIME] [flags=unsynced,absurd,fromingest]
//
// The ingest time defaults to the event time.
func ParseReading(f []string) (edged.Reading, error) {
	var r edged.Reading
	if len(f) < 6 {
		return r, fmt.Errorf("read wants LSN DEVICE SERIES TIME VALUE [key=value…]")
	}
	lsn, err := strconv.ParseUint(f[1], 10, 64)
	if err != nil {
		return r, err
	}
	r.LSN, r.Device, r.Series = lsn, f[2], f[3]
	if r.Time, err = ParseTime(f[4]); err != nil {
		return r, err
	}
	r.Ingest = r.Time
	if r.Value, err = strconv.ParseFloat(f[5], 64); err != nil {
		return r, err
	}
	for _, kv := range f[6:] {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "unit":
			r.Unit = v
		case "ingest":
			if r.Ingest, err = ParseTime(v); err != nil {
				return r, err
			}
		case "flags":
			for _, fl := range strings.Split(v, ",") {
				switch fl {
				case "unsynced":
					r.Flags |= edged.ClockUnsynced
				case "absurd":
					r.Flags |= edged.TimeAbsurd
				case "fromingest":
					r.Flags |= edged.TimeFromIngest
				default:
					return r, fmt.Errorf("unknown flag %q", fl)
				}
			}
		default:
			return r, fmt.Errorf("unknown reading field %q", k)
		}
	}
	return r, nil
}

// ParseTick reads the fields of a tick command: tick LSN NOW.
func ParseTick(f []string) (lsn uint64, now int64, err error) {
	if len(f) != 3 {
		return 0, 0, errors.New("tick wants LSN NOW")
	}
	if lsn, err = strconv.ParseUint(f[1], 10, 64); err != nil {
		return 0, 0, fmt.Errorf("tick: %w", err)
	}
	if now, err = ParseTime(f[2]); err != nil {
		return 0, 0, fmt.Errorf("tick: %w", err)
	}
	return lsn, now, nil
}

// Checkpointer is state that saves itself to and restores itself from a
// checkpoint.
type Checkpointer interface {
	MarshalBinary() ([]byte, error)
	UnmarshalBinary([]byte) error
}

// RoundTrip restores old's checkpoint into a state made by fresh and checks
// that the restored state checkpoints to the same bytes.
func RoundTrip[T Checkpointer](old T, fresh func() (T, error)) (T, error) {
	var zero T
	b, err := old.MarshalBinary()
	if err != nil {
		return zero, fmt.Errorf("MarshalBinary: %w", err)
	}
	n, err := fresh()
	if err != nil {
		return zero, err
	}
	if err := n.UnmarshalBinary(b); err != nil {
		return zero, fmt.Errorf("UnmarshalBinary: %w", err)
	}
	b2, err := n.MarshalBinary()
	if err != nil {
		return zero, fmt.Errorf("MarshalBinary after a round trip: %w", err)
	}
	if !bytes.Equal(b, b2) {
		return zero, errors.New("checkpoint not reproduced after a round trip")
	}
	return n, nil
}
