package ship

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edged-io/edged"
	"github.com/edged-io/edged/aggregate"
	"github.com/edged-io/edged/aggregate/view"
	"github.com/edged-io/edged/internal/servicetest"
	"github.com/edged-io/edged/sync/ship/shiptest"
	"github.com/edged-io/edged/wal"
)

// TestInflux ships to a real InfluxDB 1.8 (one server, a database per
// subtest) and reads the points back with Flux.
func TestInflux(t *testing.T) {
	t.Parallel()
	srv := servicetest.StartInfluxd(t)
	t.Run("schema", func(t *testing.T) { t.Parallel(); testSchema(t, newDatabase(t, srv, "schema")) })
	t.Run("idempotent", func(t *testing.T) { t.Parallel(); testIdempotent(t, newDatabase(t, srv, "idem")) })
	t.Run("quarantine", func(t *testing.T) { t.Parallel(); testQuarantine(t, newDatabase(t, srv, "quar")) })
}

var t0 = time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC).UnixNano()

func influxOptions(db *influx, readings, estimates *wal.Log) Options {
	return Options{URL: db.URL, Token: db.Token, Bucket: db.bucket, Device: "pi", Readings: readings, Estimates: estimates,
		FlushInterval: 20 * time.Millisecond, BackoffMin: time.Millisecond, BackoffMax: 10 * time.Millisecond,
		FinalDeadline: 2 * time.Second}
}

// testSchema ships readings (trusted, untrusted by flag and by the clock
// rule, NaN, names that need escaping), a tick, window rows (one
// superseded), through marks and a quota gap, and checks every point and
// field.
func testSchema(t *testing.T, db *influx) {
	dir := t.TempDir()
	// A gap: records the quota removed before the shipper saw them.
	small := wal.Options{SegmentSize: 200, RetentionBytes: 400}
	l := testLog(t, filepath.Join(dir, "wal"), small)
	if err := l.SetCursor(DefaultCursor, 0); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		appendReadings(t, l, reading("doomed", t0-int64(time.Hour)+int64(i), 1))
	}
	if _, err := l.ApplyRetention(); err != nil {
		t.Fatal(err)
	}
	ws := l.Stats()
	lost := ws.Dropped[DefaultCursor]
	if lost == 0 || ws.FirstLSN != lost+1 {
		t.Fatalf("quota dropped %d records, first LSN %d", lost, ws.FirstLSN)
	}
	survivors := 20 - int(lost)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = testLog(t, filepath.Join(dir, "wal"), wal.Options{})
	est := testLog(t, filepath.Join(dir, "estimates"), wal.Options{})

	clockRule, err := aggregate.New(aggregate.Options{})
	if err != nil {
		t.Fatal(err)
	}
	temp := reading("greenhouse/temp", t0, 21.5)
	temp.Flags = edged.TimeFromIngest
	odd := edged.Reading{Device: "pi", Series: "lab bench,1=a", Unit: `"q\`, Value: -1e-300, Time: t0 + 1, Ingest: t0 + 2}
	unsynced := reading("greenhouse/temp", t0+int64(time.Second), 22)
	unsynced.Flags = edged.ClockUnsynced
	old := reading("greenhouse/temp", time.Date(2019, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano(), 5) // before MinTime
	nan := reading("greenhouse/temp", t0+2*int64(time.Second), math.NaN())
	other := edged.Reading{Series: "hum", Value: 55, Time: t0, Ingest: t0} // no device, no unit
	slash := edged.Reading{Device: "pi", Series: `back\slash x=y`, Unit: "a b,c=d", Value: 1, Time: t0, Ingest: t0}
	r1 := appendReadings(t, l, temp, odd, slash)
	appendRaw(t, l, edged.AppendTick(nil, t0))
	r3 := appendReadings(t, l, unsynced, old, nan, other)

	w10 := row("greenhouse/temp", 10*time.Second, t0, map[string]float64{"count": 1, "sum": 21.5, "close_lsn": 1, "applied_lsn": 1})
	w10b := row("greenhouse/temp", 10*time.Second, t0, map[string]float64{"count": 1, "sum": 21.5, "p50": 21.5, "late": 2,
		"close_lsn": float64(r1), "applied_lsn": float64(r3)})
	w1m := row("greenhouse/temp", time.Minute, t0, map[string]float64{"count": 1, "mean": 21.5, "close_lsn": float64(r3)})
	appendRaw(t, est, view.AppendRowRecord(nil, &w10))
	appendRaw(t, est, view.AppendThroughRecord(nil, r1))
	appendRaw(t, est, view.AppendRowRecord(nil, &w10b))
	appendRaw(t, est, view.AppendRowRecord(nil, &w1m))
	appendRaw(t, est, view.AppendThroughRecord(nil, r3-1))

	o := influxOptions(db, l, est)
	o.Untrusted = clockRule.Untrusted
	s := newShipper(t, o).start(t)
	waitFor(t, 20*time.Second, "the shipper to catch up", caughtUp(s.Shipper))
	s.stop(t)
	st := s.Stats()
	if st.SkippedNaN != 1 || st.Gaps != 1 || st.GapRecords != lost || st.Quarantined != 0 || st.Windows != 3 ||
		st.Readings != 4+uint64(survivors) || st.Untrusted != 2 || st.WindowsLSN != r3-1 || st.ProgressThroughLSN != r3-1 {
		t.Fatalf("stats %+v", st)
	}

	type want struct {
		key    string
		fields map[string]any
	}
	check := func(m string, wants ...want) {
		t.Helper()
		got := db.points(t, m)
		if len(got) != len(wants) {
			var keys []string
			for k := range got {
				keys = append(keys, k)
			}
			t.Fatalf("%s: %d points %q, want %d", m, len(got), keys, len(wants))
		}
		for _, w := range wants {
			p, ok := got[w.key]
			if !ok {
				t.Fatalf("%s: no point %s", m, w.key)
			}
			for f, v := range w.fields {
				if f != "*" && p.fields[f] != v {
					t.Errorf("%s: field %s = %v (%T), want %v (%T)", w.key, f, p.fields[f], p.fields[f], v, v)
				}
			}
			if len(p.fields) != len(w.fields) && w.fields["*"] == nil {
				t.Errorf("%s: fields %v, want %v", w.key, p.fields, w.fields)
			}
		}
	}
	reads := []want{
		{"edged_reading,device=pi,series=greenhouse/temp " + itoa(t0), map[string]any{"value": 21.5, "unit": "°C",
			"lsn": int64(r1), "ingest": t0 + int64(time.Millisecond), "flags": int64(edged.TimeFromIngest)}},
		{"edged_reading,device=pi,series=lab bench,1=a " + itoa(t0+1), map[string]any{"value": -1e-300, "unit": `"q\`,
			"lsn": int64(r1), "ingest": t0 + 2, "flags": int64(0)}},
		{"edged_reading,device=pi,series=back\\slash x=y " + itoa(t0), map[string]any{"value": 1.0, "unit": "a b,c=d",
			"lsn": int64(r1), "ingest": t0, "flags": int64(0)}},
		{"edged_reading,device=pi,series=hum " + itoa(t0), map[string]any{"value": 55.0, "lsn": int64(r3), "ingest": t0, "flags": int64(0)}},
	}
	for i := range survivors {
		ts := t0 - int64(time.Hour) + int64(int(lost)+i)
		reads = append(reads, want{"edged_reading,device=pi,series=doomed " + itoa(ts), map[string]any{"value": 1.0, "*": true}})
	}
	check("edged_reading", reads...)
	check("edged_untrusted",
		want{"edged_untrusted,device=pi,series=greenhouse/temp " + itoa(unsynced.Time), map[string]any{"value": 22.0, "unit": "°C",
			"lsn": int64(r3), "ingest": unsynced.Ingest, "flags": int64(edged.ClockUnsynced)}},
		want{"edged_untrusted,device=pi,series=greenhouse/temp " + itoa(old.Time), map[string]any{"value": 5.0, "unit": "°C",
			"lsn": int64(r3), "ingest": old.Ingest, "flags": int64(0)}})
	check("edged_window",
		want{"edged_window,device=pi,series=greenhouse/temp,view=v1,window=10s " + itoa(t0), map[string]any{
			"count": 1.0, "sum": 21.5, "p50": 21.5, "late": 2.0, "close_lsn": float64(r1), "applied_lsn": float64(r3),
			"alpha": 0.01, "end": t0 + int64(10*time.Second), "unit": "°C"}},
		want{"edged_window,device=pi,series=greenhouse/temp,view=v1,window=1m " + itoa(t0), map[string]any{
			"count": 1.0, "mean": 21.5, "close_lsn": float64(r3), "alpha": 0.01, "end": t0 + int64(time.Minute), "unit": "°C"}})
	gaps := db.points(t, "edged_gap")
	g, ok := gaps["edged_gap,device=pi 1"]
	if len(gaps) != 1 || !ok || g.fields["to_lsn"] != int64(lost) || g.fields["count"] != int64(lost) {
		t.Fatalf("gap points %v, want one at 1 with count %d", gaps, lost)
	}
	prog := db.points(t, "edged_progress")
	p, ok := prog["edged_progress,device=pi 0"]
	if len(prog) != 1 || !ok || p.fields["readings_lsn"] != int64(r3) || p.fields["windows_lsn"] != int64(r3-1) ||
		p.fields["through_lsn"] != int64(r3-1) {
		t.Fatalf("progress points %v", prog)
	}
	if c, _ := l.Cursor(DefaultCursor); c != r3 {
		t.Fatalf("readings cursor %d, want %d", c, r3)
	}
	if c, _ := est.Cursor(DefaultCursor); c != est.DurableLSN() {
		t.Fatalf("estimates cursor %d, want %d", c, est.DurableLSN())
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// testIdempotent ships through a proxy that stores every write in the real
// server but answers 503 ("the answer was lost"), stops that shipper (a
// crash: nothing confirmed, so the cursor never moved), restarts from the
// old cursor against the real server, and counts: exactly one point per
// identity. The log also holds duplicate readings (same identity twice).
func testIdempotent(t *testing.T, db *influx) {
	dir := t.TempDir()
	l := testLog(t, filepath.Join(dir, "wal"), wal.Options{})
	est := testLog(t, filepath.Join(dir, "estimates"), wal.Options{})
	identities := map[edged.Key]bool{}
	var last uint64
	for i := range 300 {
		rs := []edged.Reading{reading("a", t0+int64(i)*int64(time.Second), float64(i)), reading("b", t0+int64(i)*int64(time.Second), 1)}
		if i%10 == 0 { // a duplicate of an earlier reading
			rs = append(rs, reading("a", t0+int64(i/2)*int64(time.Second), float64(i/2)))
		}
		for _, r := range rs {
			identities[r.Key()] = true
		}
		last = appendReadings(t, l, rs...)
		if i%50 == 0 {
			w := row("a", 10*time.Second, t0+int64(i)*int64(time.Second), map[string]float64{"count": 1})
			appendRaw(t, est, view.AppendRowRecord(nil, &w))
			appendRaw(t, est, view.AppendThroughRecord(nil, last))
		}
	}

	proxy := shiptest.NewServer(t)
	proxy.SetUpstream(db.URL)
	proxy.Respond(func(*shiptest.Request) shiptest.Response { return shiptest.Response{Forward: true, Status: 503} })
	o := influxOptions(db, l, est)
	o.URL, o.BatchSize = proxy.URL, 128
	o.FinalDeadline = 50 * time.Millisecond
	a := newShipper(t, o).start(t)
	waitFor(t, 10*time.Second, "writes through the proxy", func() bool { return len(proxy.Requests()) >= 5 })
	a.stop(t)
	if c, _ := l.Cursor(DefaultCursor); c != 0 {
		t.Fatalf("cursor moved to %d without a confirmed write", c)
	}
	if got := len(db.points(t, "edged_reading")); got == 0 {
		t.Fatal("the proxy stored nothing: the test does not exercise re-shipping")
	}
	// Progress claims only what was confirmed: nothing.
	for _, p := range db.points(t, "edged_progress") {
		if p.fields["readings_lsn"] != int64(0) || p.fields["windows_lsn"] != nil {
			t.Fatalf("progress %v claims more than was confirmed", p.fields)
		}
	}

	o = influxOptions(db, l, est)
	o.BatchSize = 128
	b := newShipper(t, o).start(t)
	waitFor(t, 20*time.Second, "the second shipper to catch up", caughtUp(b.Shipper))
	b.stop(t)
	if c, _ := l.Cursor(DefaultCursor); c != last {
		t.Fatalf("cursor %d, want %d", c, last)
	}
	if got := len(db.points(t, "edged_reading")); got != len(identities) {
		t.Fatalf("%d reading points, want %d (one per identity)", got, len(identities))
	}
	if got := len(db.points(t, "edged_window")); got != 6 {
		t.Fatalf("%d window points, want 6", got)
	}
	if got := len(db.points(t, "edged_progress")); got != 1 {
		t.Fatalf("%d progress points, want 1", got)
	}
}

// testQuarantine: the server holds a string value for edged_reading in one
// shard, so a float reading there is a field type conflict (400, partial
// write). Only that line is set aside; so is a reading whose name line
// protocol cannot carry, before sending; everything else arrives.
func testQuarantine(t *testing.T, db *influx) {
	dir := t.TempDir()
	l := testLog(t, filepath.Join(dir, "wal"), wal.Options{})
	conflictAt := time.Date(2021, 6, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	writeLine(t, db, `edged_reading,device=pi,series=text value="a string" `+itoa(conflictAt))

	var good []edged.Reading
	for i := range 40 {
		good = append(good, reading("g", t0+int64(i)*int64(time.Second), float64(i)))
	}
	appendReadings(t, l, good[:20]...)
	appendReadings(t, l, reading("text", conflictAt+1, 3), reading("g", t0-1, -1))
	appendReadings(t, l, reading("bad\nname", t0, 1))
	appendReadings(t, l, good[20:]...)

	qdir := filepath.Join(dir, "quarantine")
	o := influxOptions(db, l, nil)
	o.Quarantine = qdir
	s := newShipper(t, o).start(t)
	waitFor(t, 20*time.Second, "the shipper to catch up", caughtUp(s.Shipper))
	s.stop(t)
	if st := s.Stats(); st.Quarantined != 2 || st.Readings != 41 {
		t.Fatalf("stats %+v", st)
	}
	pts := db.points(t, "edged_reading")
	if len(pts) != 42 { // 40 + 1 good + the string point
		t.Fatalf("%d reading points, want 42", len(pts))
	}
	files, _ := filepath.Glob(filepath.Join(qdir, "*.lp"))
	var all string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		all += string(b)
	}
	for _, want := range []string{"field type conflict", "edged_reading,device=pi,series=text value=3,", "cannot be written as line protocol",
		`series "bad\nname"`} {
		if !strings.Contains(all, want) {
			t.Errorf("quarantine lacks %q:\n%s", want, all)
		}
	}
	if n := strings.Count(all, "\nedged_reading,"); n != 2 {
		t.Errorf("quarantine holds %d lines, want 2:\n%s", n, all)
	}
}

// writeLine writes one line straight to the server.
func writeLine(t *testing.T, db *influx, line string) {
	t.Helper()
	if err := db.client.WriteAPIBlocking("", db.bucket).WriteRecord(context.Background(), line); err != nil {
		t.Fatal(err)
	}
}

// TestOutage kills the real server mid-stream: the shipper backs off, the
// cursor does not move while the server is down (it never passes what was
// confirmed), and the backlog drains after the restart with nothing lost
// or duplicated.
func TestOutage(t *testing.T) {
	t.Parallel()
	db := newDatabase(t, servicetest.StartInfluxd(t), "outage")
	l := testLog(t, filepath.Join(t.TempDir(), "wal"), wal.Options{})
	o := influxOptions(db, l, nil)
	o.BatchSize, o.Timeout = 50, 2*time.Second
	o.BackoffMin, o.BackoffMax = 10*time.Millisecond, 100*time.Millisecond
	s := newShipper(t, o)
	s.sleep = sleepCtx // real backoff: the server is really down
	s.start(t)

	n := 0
	add := func(k int) uint64 {
		var lsn uint64
		for range k {
			lsn = appendReadings(t, l, reading("s", t0+int64(n)*int64(time.Millisecond), float64(n)))
			n++
		}
		return lsn
	}
	last := add(200)
	waitFor(t, 20*time.Second, "the first readings", func() bool { return s.Stats().ReadingsCursor == last })

	db.Kill()
	last = add(300)
	waitFor(t, 20*time.Second, "failed writes", func() bool { return s.Stats().Retries >= 3 })
	c0 := s.Stats().ReadingsCursor
	for range 20 {
		time.Sleep(10 * time.Millisecond)
		if c, _ := l.Cursor(DefaultCursor); c != c0 {
			t.Fatalf("cursor moved from %d to %d while the server was down", c0, c)
		}
	}
	if c0 == last {
		t.Fatal("everything was confirmed before the outage: the test exercises nothing")
	}
	db.Restart(t)
	last = add(100)
	waitFor(t, 30*time.Second, "draining after the restart", caughtUp(s.Shipper))
	s.stop(t)
	if got := len(db.points(t, "edged_reading")); got != n {
		t.Fatalf("%d points, want %d", got, n)
	}
	if c, _ := l.Cursor(DefaultCursor); c != last {
		t.Fatalf("cursor %d, want %d", c, last)
	}
	if st := s.Stats(); st.LastError == "" || st.Retries < 3 {
		t.Fatalf("stats %+v", st)
	}
}
