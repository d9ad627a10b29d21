package reliability

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/edged-io/edged"
)

// clockPhase is a stretch of the daemon-clock scenario: what the test
// clock file says, for how long.
type clockPhase struct {
	name    string
	content string // EDGED_TEST_CLOCK_FILE's content
	region  string // where the daemon's clock then reads (see clockRegion)
	dur     time.Duration
	// long, when set, is a spike on n/l held over [long[0], long[1]) of
	// the phase: longer than the for of the alert rule.
	long [2]time.Duration
}

// daemonClockPhases: a Raspberry Pi boots at 1970 with its clock
// unsynchronised, NTP sets it, then the clock is stepped +1 h, back, −1 h,
// back, +10 years and back, all while the kernel keeps reporting it
// synchronised (a wrong NTP source). A short spike on n/s straddles every
// step between trusted clocks (spikeStep).
var daemonClockPhases = []clockPhase{
	{name: "boot at 1970, unsynced", content: "1970-01-01T00:00:00Z\nunsynced\n", region: "1970", dur: 3 * time.Second,
		long: [2]time.Duration{300 * time.Millisecond, 2800 * time.Millisecond}},
	{name: "synced", content: "0s\n", region: "now", dur: 5 * time.Second,
		long: [2]time.Duration{1500 * time.Millisecond, 4500 * time.Millisecond}},
	{name: "+1 h", content: "+1h\n", region: "+1h", dur: 1500 * time.Millisecond},
	{name: "back", content: "0s\n", region: "now", dur: 1500 * time.Millisecond},
	{name: "−1 h", content: "-1h\n", region: "-1h", dur: 1500 * time.Millisecond},
	{name: "back", content: "0s\n", region: "now", dur: 1500 * time.Millisecond},
	{name: "+10 years", content: "+87600h\n", region: "+10y", dur: 1500 * time.Millisecond},
	{name: "back", content: "0s\n", region: "now", dur: 4500 * time.Millisecond,
		long: [2]time.Duration{500 * time.Millisecond, 3500 * time.Millisecond}},
}

// shortSpike is how long each short spike on n/s lasts, centred on a step.
const shortSpike = 600 * time.Millisecond

// steppedAhead reports whether phase i has the clock stepped ahead while
// synchronised: edged flags the readings it stamps then clock_unsynced.
func steppedAhead(i int) bool {
	r := daemonClockPhases[i].region
	return i > 1 && (r == "+1h" || r == "+10y")
}

// spikeStep reports whether the step from phase i to i+1 gets a short
// spike: after the sync, between two trusted clocks.
func spikeStep(i int) bool {
	return i >= 1 && i+1 < len(daemonClockPhases) && !steppedAhead(i) && !steppedAhead(i+1)
}

// clockRegion says where an instant of the daemon's clock lies relative
// to the real time of the test (start): the test's offsets are hours and
// years apart, the test lasts a minute.
func clockRegion(ns int64, start time.Time) string {
	d := time.Duration(ns - start.UnixNano())
	near := func(x time.Duration) bool { return d > x-5*time.Minute && d < x+5*time.Minute }
	switch {
	case ns < time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano():
		return "1970"
	case near(0):
		return "now"
	case near(time.Hour):
		return "+1h"
	case near(-time.Hour):
		return "-1h"
	case d > 5*365*24*time.Hour:
		return "+10y"
	}
	return "?"
}

// writeClockFile replaces the test clock's file atomically (the daemon
// may read it at any moment).
func writeClockFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path+".tmp", []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		t.Fatal(err)
	}
}

// TestClockJumpsDaemonClock moves edged's own wall clock (the test clock:
// EDGED_TEST_CLOCK_FILE, see internal/daemon) under readings it stamps
// itself — the MQTT number format (n/s, n/l) and the simulated sensor
// (sim/0) — beside a device that stamps its own, correct time (JSON, p/a),
// with clock.require_sync on, alert rules with for, renotify and absent,
// and shipping on. edged boots at 1970 with its clock unsynchronised,
// then is synchronised, then its clock is stepped +1 h, back, −1 h, back,
// +10 years and back (daemonClockPhases).
//
// The oracle is the aggregator's documented rule (aggregate package doc:
// the clock rule, watermark and lateness, duplicates, idle closing on
// ticks) applied by the test to the log edged wrote, in log order, ticks
// included. Pass criteria:
//   - every message is acknowledged and in the log; every phase has
//     readings of every source (edged keeps ingesting across each step);
//   - require_sync: every reading edged stamped while its clock said
//     unsynced, or was stepped ahead, is flagged clock_unsynced, none
//     later than the first tick after the sync (bound 2 s), none in the
//     other phases, and none stamped by a device;
//   - the windows served over all time (1970 and ten years ahead
//     included) are exactly the rule's: no window served twice, none with
//     a negative count or accounting, count/sum/min/max exact, late,
//     untrusted and duplicates counted on their windows;
//   - alerts: no event id fires twice; a step never fires for (a spike
//     shorter than for across a step stays unfired), never renotifies
//     (no renotify for a spike shorter than renotify), never fires absent
//     (no absence event while every series is fed); the long spikes fire
//     and resolve once each, the one taken while unsynced not at all;
//   - central: the readings the rule calls untrusted are in edged_untrusted
//     only, all others in edged_reading; reconcile finds no drift.
//   - after the clock comes back from ahead, no reading edged stamps is
//     late (bug clock-ahead-stalls, fixed: the readings stamped ahead
//     moved their series' watermarks ahead).
func TestClockJumpsDaemonClock(t *testing.T) {
	t.Parallel()
	fig := newFigures(t)
	e := newEnv(t, envOptions{device: "rel-dclock", ship: true})
	clockFile := filepath.Join(e.dir, "clock")
	writeClockFile(t, clockFile, daemonClockPhases[0].content)
	e.edgedEnv = []string{"EDGED_TEST_CLOCK_FILE=" + clockFile}
	e.cfg.SimInterval = 50 * time.Millisecond
	e.cfg.Subscriptions = `- topic: dclk/n/+
  format: number
  series: "n/{3}"
- topic: dclk/p/+
  format: json
  series: "p/{3}/{field}"
  fields: [{path: value}]
  time: {path: ts, format: unix_ms}`
	e.cfg.Extra = `clock: {require_sync: true}
alerts:
  homeassistant: {discovery: false}
  rules:
    - {name: hot-for, series: "n/*", above: 50, clear_below: 20, for: 2s}
    - {name: hot, series: "n/*", above: 50, clear_below: 20, renotify: 2s}
    - {name: silent-n, series: "n/*", absent: 5s}
    - {name: silent-p, series: "p/*/*", absent: 5s}
    - {name: silent-sim, series: "sim/*", absent: 5s}
`
	type alertMsg struct {
		Rule     string  `json:"rule"`
		State    string  `json:"state"`
		Series   string  `json:"series"`
		EventID  string  `json:"event_id"`
		Renotify bool    `json:"renotify"`
		Value    float64 `json:"value"`
	}
	var mu sync.Mutex
	var alertsGot []alertMsg
	recording := true
	sub := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(e.broker.URL).SetClientID("rel-dclock-alerts"))
	if tok := sub.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	defer sub.Disconnect(100)
	if tok := sub.Subscribe("edged/rel-dclock/alerts/#", 1, func(_ mqtt.Client, m mqtt.Message) {
		var a alertMsg
		if json.Unmarshal(m.Payload(), &a) == nil {
			mu.Lock()
			if recording {
				alertsGot = append(alertsGot, a)
			}
			mu.Unlock()
		}
	}); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}

	start := time.Now()
	d := e.start()
	pub := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(e.broker.URL).SetClientID("rel-dclock-pub"))
	if tok := pub.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	defer pub.Disconnect(100)

	// The load: every 50 ms one message on each of n/s, n/l (numbers,
	// stamped by edged) and p/a (JSON stamped by the device, real time);
	// every 2 s one on n/slow and one on p/slow.
	var toks []mqtt.Token
	published := map[string]int{}
	publish := func(series, topic, payload string) {
		toks = append(toks, pub.Publish(topic, 1, false, payload))
		published[series]++
	}
	base := func(k int) float64 { return 10 + float64(k%7)/4 }
	loadStart := time.Now()
	var phaseStart time.Duration
	tick := time.NewTicker(50 * time.Millisecond)
	k := 0
	for i, ph := range daemonClockPhases {
		if i > 0 {
			writeClockFile(t, clockFile, ph.content)
		}
		phaseStart = time.Since(loadStart)
		for {
			in := time.Since(loadStart) - phaseStart
			if in >= ph.dur {
				break
			}
			vs, vl := base(k), base(k)
			if ph.long != [2]time.Duration{} && in >= ph.long[0] && in < ph.long[1] {
				vl = 100
			}
			// The short spike: the last shortSpike/2 of a phase before a
			// step and the first shortSpike/2 after it, across the steps
			// between trusted clocks (a step ahead makes the readings
			// untrusted, which alerts do not evaluate).
			if i >= 2 && spikeStep(i-1) && in < shortSpike/2 || i >= 1 && spikeStep(i) && in >= ph.dur-shortSpike/2 {
				vs = 100
			}
			publish("n/s", "dclk/n/s", fmt.Sprint(vs))
			publish("n/l", "dclk/n/l", fmt.Sprint(vl))
			publish("p/a/value", "dclk/p/a", fmt.Sprintf(`{"ts":%d,"value":%g}`, time.Now().UnixMilli(), base(k+3)))
			if k%40 == 0 {
				// A series slower than the ticks: a tick sees a step
				// before its next reading does, so a step taken for
				// silence would fire its absence.
				publish("n/slow", "dclk/n/slow", fmt.Sprint(base(k+5)))
			}
			if k%40 == 20 {
				publish("p/slow/value", "dclk/p/slow", fmt.Sprintf(`{"ts":%d,"value":%g}`, time.Now().UnixMilli(), base(k+6)))
			}
			k++
			<-tick.C
		}
	}
	tick.Stop()
	loadTime := time.Since(loadStart)
	// A sentinel 15 s of event time ahead closes p/*'s windows (their
	// device stamps them; edged's idle closing would take an hour), so
	// that the batch layer finds them all complete.
	for _, d := range []string{"a", "slow"} {
		publish("p/"+d+"/value", "dclk/p/"+d, fmt.Sprintf(`{"ts":%d,"value":0}`, time.Now().Add(15*time.Second).UnixMilli()))
	}
	for _, tok := range toks {
		if !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
			t.Fatalf("publish: %v", tok.Error())
		}
	}
	// Wait for edged to have taken every message (acknowledged once
	// durable), for the last events, then stop recording alerts: from
	// now on the series are silent and absence is due.
	if err := waitFor(20*time.Second, func() bool {
		m, err := d.Metrics()
		return err == nil && int(m["edged_mqtt_acked_total"]) >= len(toks)
	}); err != nil {
		t.Errorf("edged did not acknowledge the %d messages", len(toks))
	}
	time.Sleep(500 * time.Millisecond)
	mu.Lock()
	recording = false
	got := slices.Clone(alertsGot)
	mu.Unlock()
	WaitShipped(t, d, time.Minute)
	d.Stop(t)

	// The oracle: the log, in order.
	o := newClockOracle([]time.Duration{time.Second, 10 * time.Second}, 2*time.Second, time.Hour)
	type segCount struct{ stamped, device [4]int } // accepted, late, untrusted, duplicate/conflict
	segs := make([]segCount, len(daemonClockPhases))
	segOf := func(region string, cur int) int {
		switch {
		case daemonClockPhases[cur].region == region:
			return cur
		case cur+1 < len(daemonClockPhases) && daemonClockPhases[cur+1].region == region:
			return cur + 1
		case cur > 0 && daemonClockPhases[cur-1].region == region:
			return cur - 1 // stamped before a step, logged after a reading stamped after it
		}
		return -1
	}
	cur := 0
	inWAL := map[string]int{}
	var syncedAt, lastFlagged int64 = math.MinInt64, math.MinInt64
	readingsInSeg := map[[2]int]int{} // (segment, source: 0 number, 1 device, 2 sim)
	var back, stalled int             // readings of n/s, n/l and sim/0 after a step back from ahead; late ones
	err := walEach(e.cfg.DataDir, func(lsn uint64, tick int64, rs []edged.Reading) error {
		if rs == nil {
			o.tick(tick)
			return nil
		}
		for _, r := range rs {
			region := clockRegion(r.Ingest, start)
			s := segOf(region, cur)
			if s < 0 {
				return fmt.Errorf("record %d: %s stamped %v by edged's clock (%s) during phase %q",
					lsn, r.Series, time.Unix(0, r.Ingest).UTC(), region, daemonClockPhases[cur].name)
			}
			cur = max(cur, s)
			inWAL[r.Series]++
			stamped := r.Flags&edged.TimeFromIngest != 0
			source := 1
			if stamped {
				source = 0
				if strings.HasPrefix(r.Series, "sim/") {
					source = 2
				}
			}
			readingsInSeg[[2]int{s, source}]++
			unsynced := r.Flags&edged.ClockUnsynced != 0
			switch {
			case !stamped && unsynced:
				t.Errorf("record %d: %s stamped by the device flagged clock_unsynced", lsn, r.Series)
			case stamped && s == 0 && !unsynced:
				t.Errorf("record %d: %s stamped %v while the clock said unsynced, not flagged", lsn, r.Series, time.Unix(0, r.Ingest).UTC())
			case stamped && s == 1:
				if syncedAt == math.MinInt64 {
					syncedAt = r.Ingest
				}
				if unsynced {
					lastFlagged = r.Ingest
				}
			case stamped && steppedAhead(s) && !unsynced:
				// A step ahead while synchronised is suspect until the
				// clock comes back (clock.require_sync).
				t.Errorf("record %d: %s stamped %v while the clock was stepped ahead, not flagged clock_unsynced", lsn, r.Series, time.Unix(0, r.Ingest).UTC())
			case stamped && s > 1 && !steppedAhead(s) && unsynced:
				t.Errorf("record %d: %s flagged clock_unsynced in phase %q", lsn, r.Series, daemonClockPhases[s].name)
			}
			c := o.add(r)
			if stamped {
				segs[s].stamped[c]++
			} else {
				segs[s].device[c]++
			}
			if stamped && r.Series != "n/slow" && (s == 3 || s == 7) {
				back++ // n/slow may take no reading while the clock is ahead
				if c == classLate {
					stalled++
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for series, n := range published {
		if inWAL[series] != n {
			t.Errorf("%s: %d readings in the log, %d messages published", series, inWAL[series], n)
		}
	}
	for s, ph := range daemonClockPhases {
		for source, name := range []string{"number", "device", "sim"} {
			if readingsInSeg[[2]int{s, source}] == 0 {
				t.Errorf("phase %q: no %s reading in the log (edged stopped ingesting?)", ph.name, name)
			}
		}
	}
	flagLag := time.Duration(0)
	if lastFlagged != math.MinInt64 {
		flagLag = time.Duration(lastFlagged - syncedAt)
	}
	if flagLag > 2*time.Second {
		t.Errorf("readings still flagged clock_unsynced %v after the sync (bound 2 s: the next tick clears the flag)", flagLag)
	}

	// The windows, served by a restarted edged with no source running
	// (so that nothing changes them while the test reads): its first tick
	// emits the amendments left pending.
	e.cfg.SimInterval = 0
	e.write()
	d = e.start()
	far := time.Now().AddDate(11, 0, 0).Unix()
	var served, skippedOpen int
	var problems []string
	problem := func(format string, args ...any) {
		if len(problems) < 20 {
			problems = append(problems, fmt.Sprintf(format, args...))
		}
	}
	for _, series := range []string{"n/s", "n/l", "n/slow", "p/a/value", "p/slow/value", "sim/0"} {
		for k, size := range o.sizes {
			want := o.windows(series, k)
			var rows []Window
			waitFor(10*time.Second, func() bool {
				var err error
				if rows, err = d.WindowsRange(series, time.Duration(size), 0, far); err != nil {
					return false
				}
				var late, untrusted float64
				for _, r := range rows {
					if w := want[r.Start.UnixNano()]; w == nil || !w.open {
						late += r.Fields["late"]
						untrusted += r.Fields["untrusted"]
					}
				}
				var wl, wu int
				for _, w := range want {
					if !w.open {
						wl, wu = wl+w.late, wu+w.untrusted
					}
				}
				return int(late) == wl && int(untrusted) == wu
			})
			seen := map[int64]bool{}
			for _, r := range rows {
				start := r.Start.UnixNano()
				if seen[start] {
					t.Errorf("%s %v: window %v served twice", series, time.Duration(size), r.Start.UTC())
				}
				seen[start] = true
				f := r.Fields
				for _, name := range []string{"count", "late", "untrusted", "duplicates", "conflicts"} {
					if f[name] < 0 {
						t.Errorf("%s %v %v: negative %s %v", series, time.Duration(size), r.Start.UTC(), name, f[name])
					}
				}
				w, ok := want[start]
				switch {
				case !ok:
					problem("%s %v: unexpected window %v %v", series, time.Duration(size), r.Start.UTC(), f)
				case w.open:
					// still open when edged stopped: its row may hold a
					// part; the rule says nothing yet.
				case int(f["count"]) != w.agg.Count || w.agg.Count > 0 && (f["sum"] != w.agg.Sum || f["min"] != w.agg.Min || f["max"] != w.agg.Max) ||
					int(f["late"]) != w.late || int(f["untrusted"]) != w.untrusted || int(f["duplicates"]+f["conflicts"]) != w.dup:
					problem("%s %v %v: %v; want %+v late %d untrusted %d duplicates+conflicts %d",
						series, time.Duration(size), r.Start.UTC(), f, w.agg, w.late, w.untrusted, w.dup)
				default:
					served++
				}
			}
			for start, w := range want {
				switch {
				case w.open:
					skippedOpen++
				case !seen[start]:
					problem("%s %v: window %v not served (%+v late %d untrusted %d)", series, time.Duration(size),
						time.Unix(0, start).UTC(), w.agg, w.late, w.untrusted)
				}
			}
		}
	}
	if len(problems) > 0 {
		t.Errorf("windows differ from the rule's (%d served right):\n%s", served, strings.Join(problems, "\n"))
	}
	d.Stop(t)

	// Alerts.
	perEvent := map[string]int{}
	count := map[string]int{} // rule series state[+renotify]
	for _, a := range got {
		key := a.Rule + " " + a.Series + " " + a.State
		if a.Renotify {
			key += "+renotify"
		} else if a.State == "firing" {
			perEvent[a.EventID]++
		}
		count[key]++
	}
	for id, n := range perEvent {
		if n > 1 {
			t.Errorf("alert event %s fired %d times", id, n)
		}
	}
	// Two long spikes fire (for and at once), the one taken unsynced does
	// not; each short spike across a step fires hot at once, not hot-for;
	// nothing renotifies across a step; nothing is ever absent.
	longs, shorts := 2, 0
	for i := range daemonClockPhases {
		if spikeStep(i) {
			shorts++
		}
	}
	for key, want := range map[string]int{
		"hot-for n/l firing": longs, "hot-for n/l resolved": longs, "hot-for n/s firing": 0, "hot-for n/s resolved": 0,
		"hot n/l firing": longs, "hot n/l resolved": longs, "hot n/s firing": shorts, "hot n/s resolved": shorts,
		"hot n/s firing+renotify": 0, "hot-for n/s firing+renotify": 0,
	} {
		if count[key] != want {
			t.Errorf("alerts %s: %d events, want %d", key, count[key], want)
		}
	}
	if n := count["hot n/l firing+renotify"]; n < longs || n > 2*longs {
		t.Errorf("alerts hot n/l: %d renotifications for %d spikes of 3 s (renotify 2s): want 1 or 2 each", n, longs)
	}
	var absent []string
	for key, n := range count {
		if strings.HasPrefix(key, "silent-") {
			absent = append(absent, fmt.Sprintf("%s ×%d", key, n))
		}
	}
	if len(absent) > 0 {
		t.Errorf("absence events while every series was fed (a clock step taken as silence): %v", absent)
	}

	// Central: the rule's untrusted readings in edged_untrusted only.
	wantReading, wantUntrusted := o.central()
	gotR, err := e.influxQL().Readings("edged_reading", e.cfg.Device)
	if err != nil {
		t.Fatal(err)
	}
	gotU, err := e.influxQL().Readings("edged_untrusted", e.cfg.Device)
	if err != nil {
		t.Fatal(err)
	}
	if diff := Compare(wantReading, gotR); !diff.OK() {
		t.Errorf("edged_reading: %v", diff)
	}
	if diff := Compare(wantUntrusted, gotU); !diff.OK() {
		t.Errorf("edged_untrusted: %v", diff)
	}
	rep := Reconcile(t, e.influx.URL, e.influx.Bucket, e.token, e.cfg.Device)

	// Bug clock-ahead-stalls (fixed): once the clock was back from ahead,
	// what edged stamped was late.
	if stalled > 0 {
		t.Errorf("%d of the %d readings edged stamped after its clock was set back from +1 h and +10 years are late", stalled, back)
	}

	fig.add("edged's own clock (EDGED_TEST_CLOCK_FILE), load %v: boot at 1970 unsynced, sync, +1 h, back, −1 h, back, +10 years, back; clock.require_sync on",
		loadTime.Round(100*time.Millisecond))
	fig.add("readings by phase (accepted/late/untrusted), stamped by edged (number, sim) | by the device (JSON):")
	for s, ph := range daemonClockPhases {
		c := segs[s]
		fig.add("  %-24s %4d/%4d/%4d | %4d/%4d/%4d", ph.name, c.stamped[classAccepted], c.stamped[classLate], c.stamped[classUntrusted],
			c.device[classAccepted], c.device[classLate], c.device[classUntrusted])
	}
	fig.add("every message acknowledged and in the log (%d); clock_unsynced flag cleared %v after the sync (next tick)",
		len(toks), flagLag.Round(time.Millisecond))
	fig.add("windows over all time (1970 to +10 y): %d as the rule says (1s and 10s), none twice, none negative; %d still open at the stop",
		served, skippedOpen)
	fig.add("alerts: hot-for (for 2s) fired %d / resolved %d for %d long spikes, 0 for %d short spikes across steps; hot (renotify 2s) %d firing, %d renotifications (none across a step); absence events 0",
		count["hot-for n/l firing"], count["hot-for n/l resolved"], longs, shorts, count["hot n/l firing"]+count["hot n/s firing"],
		count["hot n/l firing+renotify"]+count["hot n/s firing+renotify"])
	fig.add("central: edged_reading %d points, edged_untrusted %d points; reconcile checked %d, exact %d, explained %d (late %d), drift %d",
		len(gotR), len(gotU), rep.Total.Checked, rep.Total.Exact, rep.Total.Explained, rep.Total.Causes.Late, rep.Total.Drift)
	fig.add("after the clock came back from +1 h and +10 years, %d of %d readings edged stamped (n/s, n/l, sim/0) were late (0 since the fix of clock-ahead-stalls)", stalled, back)
}
