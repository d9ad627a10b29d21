package aggregate

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edged-io/edged"
)

var update = flag.Bool("update", false, "rewrite the expect blocks of testdata/*.txt with the actual output")

// The window scripts in testdata/*.txt (in the manner of Prometheus'
// promqltest) drive an Aggregator through Apply and check what it emits.
//
//	options windows=10s,1m lateness=5s idle=30s quantiles=0.5,0.99 alpha=0.01
//	        maxfuture=5m mintime=2020-01-01T00:00:00Z buckets=2048 pending=4096
//	read LSN DEVICE SERIES TIME VALUE [unit=U] [ingest=TIME] [flags=unsynced,absurd,fromingest]
//	tick LSN NOW
//	checkpoint            round-trip the state through MarshalBinary/UnmarshalBinary
//	stats                 print every series' SeriesStats
//	expect                the lines emitted since the previous expect, indented below it
//
// Consecutive reads with the same LSN form one record. TIME is an offset
// from 2026-01-01T00:00:00Z (a Go duration: 12s, -3s, 1h0m5s) or an RFC 3339
// time; the ingest time defaults to the event time. Every script also runs
// with a checkpoint round trip after every command and must emit the same.

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()

func parseTime(s string) (int64, error) {
	if d, err := time.ParseDuration(s); err == nil {
		return t0 + int64(d), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return 0, fmt.Errorf("time %q: neither a duration nor RFC 3339", s)
	}
	return t.UnixNano(), nil
}

func fmtTime(ns int64) string {
	if off := ns - t0; off > -1000*int64(time.Hour) && off < 1000*int64(time.Hour) {
		return time.Duration(off).String()
	}
	return time.Unix(0, ns).UTC().Format(time.RFC3339Nano)
}

func fmtFloat(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

func fmtAccounting(b *strings.Builder, a Accounting) {
	for _, f := range []struct {
		name string
		v    uint64
	}{{"invalid", a.Invalid}, {"untrusted", a.Untrusted}, {"late", a.Late}, {"dup", a.Duplicates}, {"conflict", a.Conflicts}} {
		if f.v != 0 {
			fmt.Fprintf(b, " %s=%d", f.name, f.v)
		}
	}
}

func fmtName(b *strings.Builder, device, series, unit string) {
	fmt.Fprintf(b, " %s %s", device, series)
	if unit != "" {
		fmt.Fprintf(b, " unit=%s", unit)
	}
}

// formatWindow renders a window as one script line.
func formatWindow(w Window) string {
	var b strings.Builder
	kind := "window"
	if w.Amended {
		kind = "amend"
	}
	fmt.Fprintf(&b, "%s %v %s..%s", kind, w.Size, fmtTime(w.Start), fmtTime(w.End))
	fmtName(&b, w.Device, w.Series, w.Unit)
	if !w.Amended {
		fmt.Fprintf(&b, " n=%d sum=%s min=%s max=%s mean=%s first=%s:%s last=%s:%s",
			w.Count, fmtFloat(w.Sum), fmtFloat(w.Min), fmtFloat(w.Max), fmtFloat(w.Mean),
			fmtTime(w.First.Time), fmtFloat(w.First.Value), fmtTime(w.Last.Time), fmtFloat(w.Last.Value))
		for _, q := range w.Quantiles {
			fmt.Fprintf(&b, " q%s=%s", fmtFloat(q.Q), fmtFloat(q.Value))
		}
		if w.Collapsed {
			b.WriteString(" collapsed")
		}
	}
	fmtAccounting(&b, w.Accounting)
	fmt.Fprintf(&b, " close=%d", w.CloseLSN)
	return b.String()
}

func formatStats(s SeriesStats) string {
	var b strings.Builder
	b.WriteString("series")
	fmtName(&b, s.Device, s.Series, s.Unit)
	fmt.Fprintf(&b, " accepted=%d", s.Accepted)
	if s.Accepted > 0 {
		fmt.Fprintf(&b, " wm=%s frontier=%s ingest=%s", fmtTime(s.Watermark), fmtTime(s.Frontier), fmtTime(s.LastIngest))
	}
	fmtAccounting(&b, s.Accounting)
	fmt.Fprintf(&b, " open=%d remembered=%d pending=%d", s.OpenWindows, s.Remembered, s.Pending)
	return b.String()
}

func parseOptions(args []string) (Options, error) {
	var o Options
	for _, a := range args {
		k, v, ok := strings.Cut(a, "=")
		if !ok {
			return o, fmt.Errorf("option %q is not key=value", a)
		}
		var err error
		dur := func() time.Duration {
			var d time.Duration
			d, err = time.ParseDuration(v)
			return d
		}
		switch k {
		case "windows":
			for _, w := range strings.Split(v, ",") {
				d, e := time.ParseDuration(w)
				if e != nil {
					return o, e
				}
				o.Windows = append(o.Windows, d)
			}
		case "lateness":
			o.Lateness = dur()
		case "idle":
			o.IdleAfter = dur()
		case "maxfuture":
			o.MaxFuture = dur()
		case "quantiles":
			o.Quantiles = []float64{}
			for _, q := range strings.Split(v, ",") {
				if q == "" {
					continue
				}
				f, e := strconv.ParseFloat(q, 64)
				if e != nil {
					return o, e
				}
				o.Quantiles = append(o.Quantiles, f)
			}
		case "alpha":
			o.RelativeAccuracy, err = strconv.ParseFloat(v, 64)
		case "mintime":
			o.MinTime, err = time.Parse(time.RFC3339, v)
		case "buckets":
			o.MaxBuckets, err = strconv.Atoi(v)
		case "pending":
			o.MaxPending, err = strconv.Atoi(v)
		default:
			return o, fmt.Errorf("unknown option %q", k)
		}
		if err != nil {
			return o, fmt.Errorf("option %s: %w", k, err)
		}
	}
	return o, nil
}

func parseReading(f []string) (edged.Reading, error) {
	var r edged.Reading
	if len(f) < 6 {
		return r, fmt.Errorf("read wants LSN DEVICE SERIES TIME VALUE [key=value…]")
	}
	lsn, err := strconv.ParseUint(f[1], 10, 64)
	if err != nil {
		return r, err
	}
	r.LSN, r.Device, r.Series = lsn, f[2], f[3]
	if r.Time, err = parseTime(f[4]); err != nil {
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
			if r.Ingest, err = parseTime(v); err != nil {
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

// scriptLine is one command of a script.
type scriptLine struct {
	no     int
	fields []string
	expect []string // for "expect": the lines below it
}

type script struct {
	lines []scriptLine
	raw   []string // the file's lines
}

func parseScript(text string) (*script, error) {
	s := &script{raw: strings.Split(strings.TrimRight(text, "\n"), "\n")}
	for i := 0; i < len(s.raw); i++ {
		l := s.raw[i]
		if t := strings.TrimSpace(l); t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		if strings.HasPrefix(l, " ") || strings.HasPrefix(l, "\t") {
			return nil, fmt.Errorf("line %d: indented line outside an expect block", i+1)
		}
		sl := scriptLine{no: i + 1, fields: strings.Fields(l)}
		if sl.fields[0] == "expect" {
			for i+1 < len(s.raw) && (strings.HasPrefix(s.raw[i+1], " ") || strings.HasPrefix(s.raw[i+1], "\t")) {
				i++
				sl.expect = append(sl.expect, strings.TrimSpace(s.raw[i]))
			}
		}
		s.lines = append(s.lines, sl)
	}
	return s, nil
}

// run executes the script and returns, per expect command (and one more
// for what follows the last), the lines emitted. With roundTrip the state
// goes through a checkpoint after every command.
func (s *script) run(t *testing.T, roundTrip bool) [][]string {
	t.Helper()
	var (
		a     *Aggregator
		opts  Options
		out   []string
		outs  [][]string
		batch []edged.Reading
		err   error
	)
	emit := func(w Window) { out = append(out, formatWindow(w)) }
	ensure := func() {
		if a == nil {
			if a, err = New(opts); err != nil {
				t.Fatalf("New: %v", err)
			}
		}
	}
	flush := func() {
		if len(batch) == 0 {
			return
		}
		rec, err := edged.AppendRecord(nil, batch)
		if err != nil {
			t.Fatal(err)
		}
		if err := a.Apply(rec, batch[0].LSN, emit); err != nil {
			t.Fatalf("Apply(LSN %d): %v", batch[0].LSN, err)
		}
		batch = batch[:0]
	}
	checkpoint := func() {
		b, err := a.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		n, err := New(opts)
		if err != nil {
			t.Fatal(err)
		}
		if err := n.UnmarshalBinary(b); err != nil {
			t.Fatalf("UnmarshalBinary: %v", err)
		}
		b2, _ := n.MarshalBinary()
		if !slices.Equal(b, b2) {
			t.Fatalf("checkpoint not reproduced after a round trip")
		}
		a = n
	}
	for _, l := range s.lines {
		f := l.fields
		if f[0] != "read" || (len(batch) > 0 && f[1] != strconv.FormatUint(batch[0].LSN, 10)) {
			flush()
		}
		if roundTrip && a != nil && len(batch) == 0 {
			checkpoint() // between records
		}
		switch f[0] {
		case "options":
			if a != nil {
				t.Fatalf("line %d: options after the first command", l.no)
			}
			if opts, err = parseOptions(f[1:]); err != nil {
				t.Fatalf("line %d: %v", l.no, err)
			}
		case "read":
			ensure()
			r, err := parseReading(f)
			if err != nil {
				t.Fatalf("line %d: %v", l.no, err)
			}
			batch = append(batch, r)
		case "tick":
			ensure()
			if len(f) != 3 {
				t.Fatalf("line %d: tick wants LSN NOW", l.no)
			}
			lsn, err1 := strconv.ParseUint(f[1], 10, 64)
			now, err2 := parseTime(f[2])
			if err1 != nil || err2 != nil {
				t.Fatalf("line %d: bad tick", l.no)
			}
			if err := a.Apply(edged.AppendTick(nil, now), lsn, emit); err != nil {
				t.Fatalf("line %d: %v", l.no, err)
			}
		case "checkpoint":
			ensure()
			checkpoint()
		case "stats":
			ensure()
			for _, st := range a.Stats() {
				out = append(out, formatStats(st))
			}
		case "expect":
			outs = append(outs, out)
			out = nil
		default:
			t.Fatalf("line %d: unknown command %q", l.no, f[0])
		}
	}
	flush()
	return append(outs, out)
}

func TestScripts(t *testing.T) {
	files, err := filepath.Glob("testdata/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no scripts: %v", err)
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".txt"), func(t *testing.T) {
			text, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			s, err := parseScript(string(text))
			if err != nil {
				t.Fatalf("%s: %v", file, err)
			}
			got := s.run(t, false)
			if again := s.run(t, true); !slices.EqualFunc(got, again, slices.Equal) {
				t.Errorf("with a checkpoint round trip after every command the output differs:\n%s\nvs\n%s", got, again)
			}
			if *update {
				writeScript(t, file, s, got)
				return
			}
			n := 0
			for _, l := range s.lines {
				if l.fields[0] != "expect" {
					continue
				}
				if !slices.Equal(l.expect, got[n]) {
					t.Errorf("%s:%d: expect\n  want:\n    %s\n  got:\n    %s", file, l.no,
						strings.Join(l.expect, "\n    "), strings.Join(got[n], "\n    "))
				}
				n++
			}
			if rest := got[len(got)-1]; len(rest) > 0 {
				t.Errorf("%s: output after the last expect (run with -update to record it):\n    %s", file, strings.Join(rest, "\n    "))
			}
		})
	}
}

// writeScript rewrites file with every expect block holding got, and a
// final expect block for output after the last one.
func writeScript(t *testing.T, file string, s *script, got [][]string) {
	var b strings.Builder
	n := 0
	skip := false
	for _, raw := range s.raw {
		if skip && (strings.HasPrefix(raw, " ") || strings.HasPrefix(raw, "\t")) {
			continue
		}
		skip = false
		b.WriteString(raw + "\n")
		if f := strings.Fields(raw); len(f) > 0 && f[0] == "expect" && !strings.HasPrefix(raw, " ") {
			for _, l := range got[n] {
				b.WriteString("  " + l + "\n")
			}
			n++
			skip = true
		}
	}
	if rest := got[len(got)-1]; len(rest) > 0 {
		b.WriteString("expect\n")
		for _, l := range rest {
			b.WriteString("  " + l + "\n")
		}
	}
	if err := os.WriteFile(file, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}
