package alerts

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/edged-io/edged/aggregate"
	"github.com/edged-io/edged/internal/scripttest"
)

// The alert scripts in testdata/*.txt (run by internal/scripttest, like
// aggregate's window scripts) drive an Engine and check the events it emits.
//
//	rules                 the rules, as YAML, in the indented block below
//	options clockstep=1m
//	read LSN DEVICE SERIES TIME VALUE [unit=U] [ingest=TIME] [flags=unsynced,absurd,fromingest]
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

// t0 is the time script offsets count from; the other tests use it too.
const t0 = scripttest.T0

func TestScripts(t *testing.T) { scripttest.Run(t, "testdata/*.txt", runScript, "rules") }

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
	tm, fl := scripttest.FormatTime, scripttest.FormatFloat
	fmt.Fprintf(&b, "%d.%d %s %s %s %s v=%s th=%s started=%s", ev.LSN, ev.Seq, ev.State, ev.Rule, ev.Device, ev.Series,
		fl(ev.Value), fl(ev.Threshold), tm(ev.Started))
	if ev.Resolved != 0 {
		fmt.Fprintf(&b, " resolved=%s", tm(ev.Resolved))
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
	tm, fl := scripttest.FormatTime, scripttest.FormatFloat
	fmt.Fprintf(&b, "alert %s %s %s %s v=%s th=%s started=%s since=%s id=%s", a.Rule, a.Device, a.Series, a.State,
		fl(a.Value), fl(a.Threshold), tm(a.Started), tm(a.Since), id(a.ID))
	fmtLabels(&b, a.Severity, a.Labels)
	return b.String()
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
	if w.Start, err = scripttest.ParseTime(f[5]); err != nil {
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

// runScript runs s. Event ids print as #N in order of appearance; the
// round-trip run must agree on the ids themselves. With roundTrip the state
// goes through a checkpoint before every command.
func runScript(t *testing.T, s *scripttest.Script, roundTrip bool, out *scripttest.Output) {
	var (
		e     *Engine
		rules []Rule
		opts  Options
	)
	ids := map[string]string{}
	alias := func(id string) string {
		if _, ok := ids[id]; !ok {
			ids[id] = fmt.Sprintf("#%d", len(ids)+1)
		}
		return ids[id]
	}
	same := func(id string) string { return id }
	emit := func(ev Event) { out.PrintAs(formatEvent(ev, alias), formatEvent(ev, same)) }
	ensure := func() {
		if e == nil {
			var err error
			if e, err = New(rules, opts); err != nil {
				t.Fatalf("New: %v", err)
			}
		}
	}
	checkpoint := func() {
		var err error
		if e, err = scripttest.RoundTrip(e, func() (*Engine, error) { return New(rules, opts) }); err != nil {
			t.Fatal(err)
		}
	}
	for _, l := range s.Lines {
		f := l.Fields
		if roundTrip && e != nil {
			checkpoint()
		}
		switch f[0] {
		case "rules":
			if err := yaml.Unmarshal([]byte(strings.Join(l.Block, "\n")), &rules); err != nil {
				l.Fatalf(t, "rules: %v", err)
			}
		case "options":
			for _, a := range f[1:] {
				k, v, _ := strings.Cut(a, "=")
				d, err := time.ParseDuration(v)
				if k != "clockstep" || err != nil {
					l.Fatalf(t, "bad option %q", a)
				}
				opts.ClockStep = d
			}
		case "read":
			ensure()
			r, err := scripttest.ParseReading(f)
			if err != nil {
				l.Fatalf(t, "%v", err)
			}
			e.Reading(&r, emit)
		case "window":
			ensure()
			w, err := parseWindow(f)
			if err != nil {
				l.Fatalf(t, "%v", err)
			}
			e.Window(&w, emit)
		case "tick":
			ensure()
			lsn, now, err := scripttest.ParseTick(f)
			if err != nil {
				l.Fatalf(t, "%v", err)
			}
			e.Tick(now, lsn, emit)
		case "checkpoint":
			ensure()
			checkpoint()
		case "alerts":
			ensure()
			for _, a := range e.Alerts() {
				out.PrintAs(formatAlert(a, alias), formatAlert(a, same))
			}
		case "counts":
			ensure()
			c := e.Counts()
			out.Print(fmt.Sprintf("counts pending=%d firing=%d resolved=%d", c["pending"], c["firing"], c["resolved"]))
		case "expect":
			out.Expect()
		default:
			l.Fatalf(t, "unknown command %q", f[0])
		}
	}
}
