package aggregate

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edged-io/edged"
	"github.com/edged-io/edged/internal/scripttest"
)

// The window scripts in testdata/*.txt (run by internal/scripttest) drive
// an Aggregator through Apply and check what it emits.
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
// with a checkpoint round trip between records and must emit the same.

// t0 is the time script offsets count from; the other tests use it too.
const t0 = scripttest.T0

func TestScripts(t *testing.T) { scripttest.Run(t, "testdata/*.txt", runScript) }

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
	tm, fl := scripttest.FormatTime, scripttest.FormatFloat
	fmt.Fprintf(&b, "%s %v %s..%s", kind, w.Size, tm(w.Start), tm(w.End))
	fmtName(&b, w.Device, w.Series, w.Unit)
	if !w.Amended {
		fmt.Fprintf(&b, " n=%d sum=%s min=%s max=%s mean=%s first=%s:%s last=%s:%s",
			w.Count, fl(w.Sum), fl(w.Min), fl(w.Max), fl(w.Mean),
			tm(w.First.Time), fl(w.First.Value), tm(w.Last.Time), fl(w.Last.Value))
		for _, q := range w.Quantiles {
			fmt.Fprintf(&b, " q%s=%s", fl(q.Q), fl(q.Value))
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
		tm := scripttest.FormatTime
		fmt.Fprintf(&b, " wm=%s frontier=%s ingest=%s", tm(s.Watermark), tm(s.Frontier), tm(s.LastIngest))
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

// runScript runs s. With roundTrip the state goes through a checkpoint
// before every command that starts a record.
func runScript(t *testing.T, s *scripttest.Script, roundTrip bool, out *scripttest.Output) {
	var (
		a     *Aggregator
		opts  Options
		batch []edged.Reading
		err   error
	)
	emit := func(w Window) { out.Print(formatWindow(w)) }
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
		if a, err = scripttest.RoundTrip(a, func() (*Aggregator, error) { return New(opts) }); err != nil {
			t.Fatal(err)
		}
	}
	for _, l := range s.Lines {
		f := l.Fields
		if f[0] != "read" || (len(batch) > 0 && f[1] != strconv.FormatUint(batch[0].LSN, 10)) {
			flush()
		}
		if roundTrip && a != nil && len(batch) == 0 {
			checkpoint() // between records
		}
		switch f[0] {
		case "options":
			if a != nil {
				l.Fatalf(t, "options after the first command")
			}
			if opts, err = parseOptions(f[1:]); err != nil {
				l.Fatalf(t, "%v", err)
			}
		case "read":
			ensure()
			r, err := scripttest.ParseReading(f)
			if err != nil {
				l.Fatalf(t, "%v", err)
			}
			batch = append(batch, r)
		case "tick":
			ensure()
			lsn, now, err := scripttest.ParseTick(f)
			if err != nil {
				l.Fatalf(t, "%v", err)
			}
			if err := a.Apply(edged.AppendTick(nil, now), lsn, emit); err != nil {
				l.Fatalf(t, "%v", err)
			}
		case "checkpoint":
			ensure()
			checkpoint()
		case "stats":
			ensure()
			for _, st := range a.Stats() {
				out.Print(formatStats(st))
			}
		case "expect":
			out.Expect()
		default:
			l.Fatalf(t, "unknown command %q", f[0])
		}
	}
	flush()
}
