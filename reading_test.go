package edged

import (
	"errors"
	"math"
	"reflect"
	"testing"
)

func sampleReadings() []Reading {
	return []Reading{
		{Device: "pi-1", Series: "greenhouse/temperature", Unit: "°C", Value: 21.25, Time: 1_700_000_000_000_000_000, Ingest: 1_700_000_000_100_000_000},
		{Device: "pi-1", Series: "greenhouse/humidity", Unit: "%", Value: math.Copysign(0, -1), Time: 5, Ingest: 3, Flags: TimeFromIngest | ClockUnsynced},
		{Device: "", Series: "x", Value: math.Inf(-1), Time: math.MinInt64 / 2, Ingest: 0, Flags: TimeAbsurd},
	}
}

func TestRecordRoundTrip(t *testing.T) {
	in := sampleReadings()
	b, err := AppendRecord(nil, in)
	if err != nil {
		t.Fatal(err)
	}
	out, err := DecodeRecord(nil, b, 42)
	if err != nil {
		t.Fatal(err)
	}
	for i := range in {
		in[i].LSN = 42
	}
	if !reflect.DeepEqual(in, out) {
		t.Fatalf("round trip:\n in %+v\nout %+v", in, out)
	}
	if !out[1].Flags.Untrusted() || out[0].Flags.Untrusted() {
		t.Fatal("Untrusted flags wrong")
	}
}

func TestRecordRejects(t *testing.T) {
	good, _ := AppendRecord(nil, sampleReadings())
	long := make([]byte, MaxStringLen+1)
	cases := map[string][]byte{
		"empty":          {},
		"bad version":    {9, 1},
		"zero count":     {1, 0},
		"huge count":     {1, 0xff, 0xff, 0xff, 0xff, 0x0f},
		"truncated":      good[:len(good)-1],
		"trailing bytes": append(append([]byte{}, good...), 0),
	}
	for name, b := range cases {
		if _, err := DecodeRecord(nil, b, 1); !errors.Is(err, ErrBadRecord) {
			t.Errorf("%s: err = %v, want ErrBadRecord", name, err)
		}
	}
	if _, err := AppendRecord(nil, nil); !errors.Is(err, ErrBadRecord) {
		t.Error("empty batch accepted")
	}
	if _, err := AppendRecord(nil, []Reading{{Series: string(long)}}); !errors.Is(err, ErrBadRecord) {
		t.Error("over-long series accepted")
	}
}

func TestTickRoundTrip(t *testing.T) {
	for _, now := range []int64{0, 1, -5, 1_800_000_000_000_000_000} {
		b := AppendTick(nil, now)
		if Kind(b) != KindTick {
			t.Fatalf("kind %d", Kind(b))
		}
		if got, err := DecodeTick(b); err != nil || got != now {
			t.Fatalf("tick %d: %d %v", now, got, err)
		}
	}
	if _, err := DecodeTick([]byte{byte(KindTick)}); !errors.Is(err, ErrBadRecord) {
		t.Fatal("truncated tick accepted")
	}
	if _, err := DecodeRecord(nil, AppendTick(nil, 1), 1); !errors.Is(err, ErrBadRecord) {
		t.Fatal("a tick decoded as readings")
	}
}

func FuzzDecodeRecord(f *testing.F) {
	good, _ := AppendRecord(nil, sampleReadings())
	f.Add(good)
	f.Add([]byte{1, 0})
	f.Add([]byte{1, 1, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		rs, err := DecodeRecord(nil, b, 7)
		if err != nil {
			return
		}
		again, err := AppendRecord(nil, rs)
		if err != nil {
			t.Fatalf("decoded readings do not re-encode: %v", err)
		}
		rs2, err := DecodeRecord(nil, again, 7)
		if err != nil || !reflect.DeepEqual(rs, rs2) && !hasNaN(rs) {
			t.Fatalf("re-decode differs: %v", err)
		}
	})
}

func hasNaN(rs []Reading) bool {
	for _, r := range rs {
		if math.IsNaN(r.Value) {
			return true
		}
	}
	return false
}

func TestRecordDecoderInternsNames(t *testing.T) {
	b, _ := AppendRecord(nil, sampleReadings())
	want, _ := DecodeRecord(nil, b, 3)
	var rd RecordDecoder
	got, err := rd.Decode(nil, b, 3)
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("Decode = %+v, %v; want %+v", got, err, want)
	}
	buf := make([]Reading, 0, 8)
	if n := testing.AllocsPerRun(100, func() { buf, _ = rd.Decode(buf[:0], b, 3) }); n != 0 {
		t.Fatalf("%v allocations per decode once the names are known", n)
	}
	b[len(b)-2] = 'X' // the decoded names must not alias the record
	if got[2].Series != "x" {
		t.Fatalf("a decoded name changed with the buffer: %q", got[2].Series)
	}
}
