package alerts

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

	"gopkg.in/yaml.v3"

	"github.com/edged-io/edged"
	"github.com/edged-io/edged/aggregate"
)

var update = flag.Bool("update", false, "rewrite the expect blocks of testdata/*.txt with the actual output")

// The alert scripts in testdata/*.txt (in the manner of aggregate's window
// scripts) drive an Engine and check the events it emits.
//
//	rules                 the rules, as YAML, in the indented block below
//	options clockstep=1m
//	read LSN DEVICE SERIES TIME VALUE [ingest=TIME] [flags=unsynced,absurd,fromingest]
//	window LSN DEVICE SERIES SIZE START [n=N] [mean=V] [min=V] [max=V] [sum=V]
//	       [first=V] [last=V] [pNN=V…] [amended]
//	tick LSN NOW
//	checkpoint            round-trip the state through MarshalBinary/UnmarshalBinary
//	alerts                print Alerts()
//	counts                print Counts()
//	expect                the lines emitted since the previous expect, indented below it
//
// TIME is an offset from 2026-01-01T00:00:00Z (a Go duration) or an RFC
// 3339 time; the ingest time defaults to the event time. An event prints
// as
//
//	LSN.SEQ STATE RULE DEVICE SERIES v=VALUE th=THRESHOLD started=TIME
//	        [resolved=TIME] id=#N [renotify] [sev=SEVERITY] [labels=K=V,…]
//
// where #N numbers the event ids in order of appearance (the property test
// checks the ids themselves). Every script also runs with a checkpoint
// round trip before every command and must emit the same, ids included.

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

func fmtLabels(b *strings.Builder, sev string, labels map[string]string) {
	if sev != SeverityWarning {
		fmt.Fprintf(b, " sev=%s", sev)
	}
	if len(labels) > 0 {
		var kv []string
		for k, v := range labels {
			kv = append(kv, k+"="+v)
		}
		slices.Sort(kv)
		fmt.Fprintf(b, " labels=%s", strings.Join(kv, ","))
	}
}

// formatEvent renders an event as one script line; id maps the event id
// to what is printed.
func formatEvent(ev Event, id func(string) string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d.%d %s %s %s %s v=%s th=%s started=%s", ev.LSN, ev.Seq, ev.State, ev.Rule, ev.Device, ev.Series,
		fmtFloat(ev.Value), fmtFloat(ev.Threshold), fmtTime(ev.Started))
	if ev.Resolved != 0 {
		fmt.Fprintf(&b, " resolved=%s", fmtTime(ev.Resolved))
	}
	fmt.Fprintf(&b, " id=%s", id(ev.ID))
	if ev.Renotify {
		b.WriteString(" renotify")
	}
	fmtLabels(&b, ev.Severity, ev.Labels)
	return b.String()
}

func formatAlert(a Alert, id func(string) string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "alert %s %s %s %s v=%s th=%s started=%s since=%s id=%s", a.Rule, a.Device, a.Series, a.State,
		fmtFloat(a.Value), fmtFloat(a.Threshold), fmtTime(a.Started), fmtTime(a.Since), id(a.ID))
	fmtLabels(&b, a.Severity, a.Labels)
	return b.String()
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

func parseWindow(f []string) (aggregate.Window, error) {
	var w aggregate.Window
	if len(f) < 6 {
		return w, fmt.Errorf("window wants LSN DEVICE SERIES SIZE START [key=value…]")
	}
	var err error
	if w.CloseLSN, err = strconv.ParseUint(f[1], 10, 64); err != nil {
		return w, err
	}
	w.Device, w.Series, w.Count = f[2], f[3], 1
	if w.Size, err = time.ParseDuration(f[4]); err != nil {
		return w, err
	}
	if w.Start, err = parseTime(f[5]); err != nil {
		return w, err
	}
	w.End = w.Start + int64(w.Size)
	for _, kv := range f[6:] {
		if kv == "amended" {
			w.Amended, w.Count = true, 0
			continue
		}
		k, v, _ := strings.Cut(kv, "=")
		x, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return w, fmt.Errorf("window field %s: %v", k, err)
		}
		switch k {
		case "n":
			w.Count = uint64(x)
		case "mean":
			w.Mean = x
		case "min":
			w.Min = x
		case "max":
			w.Max = x
		case "sum":
			w.Sum = x
		case "first":
			w.First = aggregate.Point{Time: w.Start, Value: x}
		case "last":
			w.Last = aggregate.Point{Time: w.End - 1, Value: x}
		default:
			p, ok := strings.CutPrefix(k, "p")
			q, err := strconv.ParseFloat(p, 64)
			if !ok || err != nil {
				return w, fmt.Errorf("unknown window field %q", k)
			}
			w.Quantiles = append(w.Quantiles, aggregate.Quantile{Q: q / 100, Value: x})
		}
	}
	return w, nil
}

// scriptLine is one command of a script.
type scriptLine struct {
	no     int
	fields []string
	block  []string // for "expect" and "rules": the indented lines below it
}

type script struct {
	lines []scriptLine
	raw   []string // the file's lines
}

func indented(l string) bool { return strings.HasPrefix(l, " ") || strings.HasPrefix(l, "\t") }

func parseScript(text string) (*script, error) {
	s := &script{raw: strings.Split(strings.TrimRight(text, "\n"), "\n")}
	for i := 0; i < len(s.raw); i++ {
		l := s.raw[i]
		if t := strings.TrimSpace(l); t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		if indented(l) {
			return nil, fmt.Errorf("line %d: indented line outside an expect or rules block", i+1)
		}
		sl := scriptLine{no: i + 1, fields: strings.Fields(l)}
		if sl.fields[0] == "expect" || sl.fields[0] == "rules" {
			for i+1 < len(s.raw) && indented(s.raw[i+1]) {
				i++
				if sl.fields[0] == "expect" {
					sl.block = append(sl.block, strings.TrimSpace(s.raw[i]))
				} else {
					sl.block = append(sl.block, strings.TrimPrefix(s.raw[i], "  "))
				}
			}
		}
		s.lines = append(s.lines, sl)
	}
	return s, nil
}

// run executes the script and returns, per expect command (and one more
// for what follows the last), the lines emitted, once with ids numbered
// and once with the ids themselves. With roundTrip the state goes through
// a checkpoint before every command.
func (s *script) run(t *testing.T, roundTrip bool) (out, raw [][]string) {
	t.Helper()
	var (
		e      *Engine
		rules  []Rule
		opts   Options
		cur    []string
		curRaw []string
	)
	ids := map[string]string{}
	alias := func(id string) string {
		if _, ok := ids[id]; !ok {
			ids[id] = fmt.Sprintf("#%d", len(ids)+1)
		}
		return ids[id]
	}
	same := func(id string) string { return id }
	emit := func(ev Event) {
		cur = append(cur, formatEvent(ev, alias))
		curRaw = append(curRaw, formatEvent(ev, same))
	}
	ensure := func() {
		if e == nil {
			var err error
			if e, err = New(rules, opts); err != nil {
				t.Fatalf("New: %v", err)
			}
		}
	}
	for _, l := range s.lines {
		f := l.fields
		if roundTrip && e != nil {
			e = roundTripEngine(t, e, rules, opts)
		}
		fail := func(format string, args ...any) {
			t.Helper()
			t.Fatalf("line %d: %s", l.no, fmt.Sprintf(format, args...))
		}
		switch f[0] {
		case "rules":
			if err := yaml.Unmarshal([]byte(strings.Join(l.block, "\n")), &rules); err != nil {
				fail("rules: %v", err)
			}
		case "options":
			for _, a := range f[1:] {
				k, v, _ := strings.Cut(a, "=")
				d, err := time.ParseDuration(v)
				if k != "clockstep" || err != nil {
					fail("bad option %q", a)
				}
				opts.ClockStep = d
			}
		case "read":
			ensure()
			r, err := parseReading(f)
			if err != nil {
				fail("%v", err)
			}
			e.Reading(&r, emit)
		case "window":
			ensure()
			w, err := parseWindow(f)
			if err != nil {
				fail("%v", err)
			}
			e.Window(&w, emit)
		case "tick":
			ensure()
			lsn, err1 := strconv.ParseUint(f[1], 10, 64)
			now, err2 := parseTime(f[2])
			if len(f) != 3 || err1 != nil || err2 != nil {
				fail("tick wants LSN NOW")
			}
			e.Tick(now, lsn, emit)
		case "checkpoint":
			ensure()
			e = roundTripEngine(t, e, rules, opts)
		case "alerts":
			ensure()
			for _, a := range e.Alerts() {
				cur = append(cur, formatAlert(a, alias))
				curRaw = append(curRaw, formatAlert(a, same))
			}
		case "counts":
			ensure()
			c := e.Counts()
			line := fmt.Sprintf("counts pending=%d firing=%d resolved=%d", c["pending"], c["firing"], c["resolved"])
			cur, curRaw = append(cur, line), append(curRaw, line)
		case "expect":
			out, raw = append(out, cur), append(raw, curRaw)
			cur, curRaw = nil, nil
		default:
			fail("unknown command %q", f[0])
		}
	}
	return append(out, cur), append(raw, curRaw)
}

// roundTripEngine restores e's checkpoint into a new engine and checks
// that it checkpoints to the same bytes.
func roundTripEngine(t *testing.T, e *Engine, rules []Rule, opts Options) *Engine {
	t.Helper()
	b, err := e.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	n, err := New(rules, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.UnmarshalBinary(b); err != nil {
		t.Fatalf("UnmarshalBinary: %v", err)
	}
	if b2, _ := n.MarshalBinary(); !slices.Equal(b, b2) {
		t.Fatalf("checkpoint not reproduced after a round trip")
	}
	return n
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
			got, gotRaw := s.run(t, false)
			if _, again := s.run(t, true); !slices.EqualFunc(gotRaw, again, slices.Equal) {
				t.Errorf("with a checkpoint round trip before every command the output differs:\n%q\nvs\n%q", gotRaw, again)
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
				if !slices.Equal(l.block, got[n]) {
					t.Errorf("%s:%d: expect\n  want:\n    %s\n  got:\n    %s", file, l.no,
						strings.Join(l.block, "\n    "), strings.Join(got[n], "\n    "))
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
		if skip && indented(raw) {
			continue
		}
		skip = false
		b.WriteString(raw + "\n")
		if f := strings.Fields(raw); len(f) > 0 && f[0] == "expect" && !indented(raw) {
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
