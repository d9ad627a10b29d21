package view

import (
	"errors"
	"math"
	"testing"
	"time"
)

func TestRecordRoundTrip(t *testing.T) {
	v := nanRow()
	v[FieldIndex("count")] = 3
	v[FieldIndex("sum")] = -1.5
	v[FieldIndex("close_lsn")] = 42
	in := Row{Device: "pi", Series: "greenhouse/t", Unit: "°C", Size: time.Minute, Start: 60e9, End: 120e9, Values: v}
	kind, out, _, err := DecodeRecord(AppendRowRecord(nil, &in))
	if err != nil || kind != RecordRow {
		t.Fatalf("decode: kind %d err %v", kind, err)
	}
	if out.Device != in.Device || out.Series != in.Series || out.Unit != in.Unit || out.Size != in.Size || out.Start != in.Start || out.End != in.End {
		t.Fatalf("got %+v want %+v", out, in)
	}
	for i := range v {
		if math.Float64bits(out.Values[i]) != math.Float64bits(v[i]) && !(math.IsNaN(out.Values[i]) && math.IsNaN(v[i])) {
			t.Errorf("field %s: got %v want %v", Fields[i], out.Values[i], v[i])
		}
	}
	kind, _, through, err := DecodeRecord(AppendThroughRecord(nil, 1<<40))
	if err != nil || kind != RecordThrough || through != 1<<40 {
		t.Fatalf("through: kind %d lsn %d err %v", kind, through, err)
	}
}

func TestRecordRejectsDamage(t *testing.T) {
	in := Row{Device: "pi", Series: "s", Size: time.Second, Values: nanRow()}
	in.Values[0] = 1
	rec := AppendRowRecord(nil, &in)
	for n := range len(rec) {
		if _, _, _, err := DecodeRecord(rec[:n]); !errors.Is(err, ErrBadRecord) {
			t.Errorf("truncated to %d bytes: err %v", n, err)
		}
	}
	if _, _, _, err := DecodeRecord(append(rec, 0)); !errors.Is(err, ErrBadRecord) {
		t.Errorf("trailing byte: err %v", err)
	}
	if _, _, _, err := DecodeRecord([]byte{9}); !errors.Is(err, ErrBadRecord) {
		t.Errorf("unknown kind: err %v", err)
	}
}

func FuzzDecodeRecord(f *testing.F) {
	in := Row{Device: "pi", Series: "s", Size: time.Second, Values: nanRow()}
	in.Values[1] = 2
	f.Add(AppendRowRecord(nil, &in))
	f.Add(AppendThroughRecord(nil, 7))
	f.Fuzz(func(t *testing.T, b []byte) {
		kind, row, through, err := DecodeRecord(b)
		if err != nil {
			return
		}
		var again []byte
		if kind == RecordRow {
			again = AppendRowRecord(nil, &row)
		} else {
			again = AppendThroughRecord(nil, through)
		}
		if _, _, _, err := DecodeRecord(again); err != nil {
			t.Fatalf("re-encoded record does not decode: %v", err)
		}
	})
}
