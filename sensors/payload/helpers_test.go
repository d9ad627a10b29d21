package payload

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edged-io/edged"
)

// ingest is the ingest clock of every test: 2024-05-01T12:00:00Z.
var ingest = time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC).UnixNano()

const device = "pi"

// show renders a reading compactly for golden comparisons:
// series=value[unit] @time, where time is "ingest" for readings stamped
// with the ingest time, and " absurd" marks edged.TimeAbsurd.
func show(r edged.Reading) string {
	at := "ingest"
	if r.Flags&edged.TimeFromIngest == 0 {
		at = time.Unix(0, r.Time).UTC().Format(time.RFC3339Nano)
	}
	s := fmt.Sprintf("%s=%v[%s] @%s", r.Series, r.Value, r.Unit, at)
	if r.Flags&edged.TimeAbsurd != 0 {
		s += " absurd"
	}
	return s
}

func showAll(rs []edged.Reading) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = show(r)
	}
	return out
}

func mustNew(t testing.TB, c Config) Decoder {
	t.Helper()
	d, err := New(c, device)
	if err != nil {
		t.Fatalf("New(%+v): %v", c, err)
	}
	return d
}

// reasonOf returns the Reason of a decode error ("" for nil).
func reasonOf(t testing.TB, topic string, err error) Reason {
	t.Helper()
	if err == nil {
		return ""
	}
	var pe *Error
	if !errors.As(err, &pe) {
		t.Fatalf("error %v (%T) is not a *payload.Error", err, err)
	}
	if pe.Topic != topic {
		t.Errorf("error names topic %q, want %q", pe.Topic, topic)
	}
	if !slices.Contains(reasons, pe.Reason) {
		t.Errorf("reason %q is not in Reasons()", pe.Reason)
	}
	if !strings.Contains(err.Error(), strconv.Quote(topic)) {
		t.Errorf("message %q does not name the topic", err)
	}
	return pe.Reason
}

// checkReadings asserts what every reading must satisfy, whatever the input.
func checkReadings(t testing.TB, rs []edged.Reading, dev string, at int64) {
	t.Helper()
	for _, r := range rs {
		if msg := badName(r.Series); msg != "" {
			t.Fatalf("reading %+v: %s", r, msg)
		}
		if math.IsNaN(r.Value) || math.IsInf(r.Value, 0) {
			t.Fatalf("reading %+v: value not finite", r)
		}
		if r.Device != dev || r.Ingest != at || r.LSN != 0 {
			t.Fatalf("reading %+v: device, ingest or LSN wrong", r)
		}
		if r.Flags&edged.TimeFromIngest != 0 && (r.Time != at || r.Flags&edged.TimeAbsurd != 0) {
			t.Fatalf("reading %+v: flagged ingest time but Time differs or is absurd", r)
		}
		if r.Flags&^(edged.TimeFromIngest|edged.TimeAbsurd) != 0 {
			t.Fatalf("reading %+v: unexpected flags", r)
		}
		if len(r.Unit) > edged.MaxStringLen {
			t.Fatalf("reading %+v: unit too long", r)
		}
	}
	if _, err := edged.AppendRecord(nil, rs); len(rs) > 0 && err != nil {
		t.Fatalf("readings do not encode as a log record: %v", err)
	}
}
