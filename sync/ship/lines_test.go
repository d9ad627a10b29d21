package ship

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edged-io/edged"
	"github.com/edged-io/edged/wal"
)

func testEncoder() *encoder {
	o := Options{Device: "pi"}
	o = o.withDefaults()
	return newEncoder(&o)
}

func TestEncode(t *testing.T) {
	e := testEncoder()
	var b batch
	r := edged.Reading{Device: "pi", Series: "lab bench,1=a", Unit: `"°C\`, Value: 21.5, Time: 1700000000000000000,
		Ingest: 1700000000000000007, Flags: edged.TimeFromIngest, LSN: 42}
	if u, ok := e.reading(&b, &r); u || !ok {
		t.Fatalf("reading: untrusted %v ok %v", u, ok)
	}
	r.Flags = edged.ClockUnsynced
	r.Device, r.Unit, r.Value = "", "", 1e21
	if u, ok := e.reading(&b, &r); !u || !ok {
		t.Fatalf("unsynced reading: untrusted %v ok %v", u, ok)
	}
	w := row("t", time.Hour, 1699999200000000000, map[string]float64{"count": 3, "p99": 0.1, "close_lsn": 9, "sum": math.Inf(1)})
	if !e.row(&b, &w) {
		t.Fatal("row refused")
	}
	e.gap(&b, 5, 9, 123)
	got := string(b.buf) + string(e.progressLine(nil, progress{10, 7, 7}, 99)) +
		string(e.progressLine(nil, progress{10, -1, -1}, 99)) + string(e.progressLine(nil, progress{10, -1, 10}, 99))
	want := `edged_reading,device=pi,series=lab\ bench\,1\=a value=21.5,unit="\"°C\\",lsn=42i,ingest=1700000000000000007i,flags=1i 1700000000000000000
edged_untrusted,device=pi,series=lab\ bench\,1\=a value=1e+21,lsn=42i,ingest=1700000000000000007i,flags=2i 1700000000000000000
edged_window,device=pi,series=t,view=v1,window=1h count=3,p99=0.1,close_lsn=9,alpha=0.01,end=1700002800000000000i,unit="°C" 1699999200000000000
edged_gap,device=pi to_lsn=9i,count=5i,noticed=123i 5
edged_progress,device=pi readings_lsn=10i,windows_lsn=7i,through_lsn=7i,updated=99i 0
edged_progress,device=pi readings_lsn=10i,updated=99i 0
edged_progress,device=pi readings_lsn=10i,through_lsn=10i,updated=99i 0
`
	if got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
	if b.points() != 4 || string(b.span(1, 2)) != strings.Split(want, "\n")[1]+"\n" {
		t.Fatalf("points %d, span %q", b.points(), b.span(1, 2))
	}
}

func TestEncodeRefuses(t *testing.T) {
	for _, r := range []edged.Reading{
		{Device: "pi", Series: "a\nb", Value: 1},
		{Device: "pi", Series: `ends in \`, Value: 1},
		{Device: "pi", Series: `a\ b`, Value: 1},
		{Device: "pi", Series: "", Value: 1},
		{Device: "pi", Series: "s", Unit: "a\rb", Value: 1},
		{Device: "pi", Series: "s", Value: 1, Time: math.MinInt64},
		{Device: "pi", Series: "s", Value: 1, Time: math.MaxInt64},
	} {
		e := testEncoder()
		var b batch
		if _, ok := e.reading(&b, &r); ok || b.points() != 0 || len(b.buf) != 0 || len(b.rejects) != 1 {
			t.Errorf("%+v: ok %v, %d points, buf %q, rejects %v", r, ok, b.points(), b.buf, b.rejects)
		}
	}
}

// FuzzEncodeReading: whatever the names, a reading is one line or refused,
// and refused only for a reason.
func FuzzEncodeReading(f *testing.F) {
	f.Add("pi", "greenhouse/temp", "°C", 21.5, int64(1))
	f.Add("p i", `a\,b`, `"`, math.NaN(), int64(math.MinInt64))
	f.Fuzz(func(t *testing.T, device, series, unit string, v float64, ts int64) {
		e := testEncoder()
		var b batch
		r := edged.Reading{Device: device, Series: series, Unit: unit, Value: v, Time: ts}
		_, ok := e.reading(&b, &r)
		dev := device
		if dev == "" {
			dev = "pi"
		}
		safe := tagSafe(dev) && tagSafe(series) && stringSafe(unit) && ts >= minTime && ts <= maxTime
		if ok != safe {
			t.Fatalf("ok %v, names safe %v", ok, safe)
		}
		if ok && (strings.Count(string(b.buf), "\n") != 1 || !strings.HasSuffix(string(b.buf), "\n")) {
			t.Fatalf("not one line: %q", b.buf)
		}
	})
}

func TestQuarantineBounds(t *testing.T) {
	dir := t.TempDir()
	q := quarantine{dir: dir, maxFiles: 3, maxBytes: 1 << 20}
	now := time.Unix(1700000000, 0)
	var last string
	for i := range 10 {
		p, err := q.put(now.Add(time.Duration(i)*time.Second), []reject{{line: "m v=1 1", reason: "400: bad\nline"}})
		if err != nil {
			t.Fatal(err)
		}
		last = p
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.lp"))
	if len(files) != 3 || files[2] != last {
		t.Fatalf("files %v, want the newest 3 ending in %s", files, last)
	}
	b, _ := os.ReadFile(last)
	if string(b) != "# 400: bad line\nm v=1 1\n" {
		t.Fatalf("content %q", b)
	}
	q.maxBytes = int64(len(b)) + 1 // room for one file
	if _, err := q.put(now.Add(time.Minute), []reject{{line: "m v=2 2", reason: "x"}}); err != nil {
		t.Fatal(err)
	}
	if files, _ := filepath.Glob(filepath.Join(dir, "*.lp")); len(files) != 1 {
		t.Fatalf("files %v, want 1 within the byte bound", files)
	}
}

func TestValidate(t *testing.T) {
	l := &wal.Log{}
	ok := Options{URL: "http://central:8086", Bucket: "edged/autogen", Device: "pi", Readings: l, Token: "user:hunter22"}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, mod := range map[string]func(*Options){
		"no URL":        func(o *Options) { o.URL = "" },
		"no scheme":     func(o *Options) { o.URL = "central:8086" },
		"credentials":   func(o *Options) { o.URL = "http://user:hunter22@central:8086" },
		"no bucket":     func(o *Options) { o.Bucket = "" },
		"no device":     func(o *Options) { o.Device = "" },
		"bad device":    func(o *Options) { o.Device = "a\nb" },
		"no log":        func(o *Options) { o.Readings = nil },
		"bad cursor":    func(o *Options) { o.Cursor = "../x" },
		"batch size":    func(o *Options) { o.BatchSize = MaxBatchSize + 1 },
		"batch bytes":   func(o *Options) { o.BatchBytes = 10 },
		"negative":      func(o *Options) { o.Timeout = -1 },
		"backoff order": func(o *Options) { o.BackoffMin, o.BackoffMax = time.Minute, time.Second },
		"alpha":         func(o *Options) { o.Alpha = 0.7 },
	} {
		o := ok
		mod(&o)
		err := o.Validate()
		if !errors.Is(err, ErrOptions) {
			t.Errorf("%s: %v, want ErrOptions", name, err)
		} else if strings.Contains(err.Error(), "hunter22") {
			t.Errorf("%s: error holds the secret: %v", name, err)
		}
	}
}
