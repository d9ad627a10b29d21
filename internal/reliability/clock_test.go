package reliability

import (
	"encoding/json"
	"fmt"
	"math"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// clockReading is one message of the clock scenario.
type clockReading struct {
	series string
	ts     int64 // event time, ms
	value  float64
}

// clockScenario builds, per series, the readings in arrival order, all
// stamped by the device (payload timestamps; TestClockJumpsDaemonClock moves
// the daemon's own clock instead):
//
//	c0  +1 h: 200 readings, then 50 stamped an hour ahead (the device's
//	    clock jumped forward), then 200 back on time (it was corrected);
//	c1  −1 h: 200 readings, 50 stamped an hour behind, 200 on time;
//	c2  +10 years: 200, then 50 stamped ten years ahead, then 200;
//	c3  boot at 1970 then sync: 50 readings stamped from 1970-01-01
//	    (a Pi without RTC before NTP), then 400 on time.
//
// On-time readings are 100 ms apart from t0 (three hours ago). Every 25th
// reading is a spike (100) that the alert rule fires on; the others are
// 10 + (k mod 7)/4.
func clockScenario(t0 int64) map[string][]clockReading {
	const p = 100
	hour := int64(time.Hour / time.Millisecond)
	tenYears := 10 * 365 * 24 * hour
	value := func(k int) float64 {
		if k%25 == 12 {
			return 100
		}
		return 10 + float64(k%7)/4
	}
	out := map[string][]clockReading{}
	add := func(series string, k int, ts int64) {
		out[series] = append(out[series], clockReading{series, ts, value(k)})
	}
	for k := range 450 {
		onTime := t0 + int64(k)*p
		switch {
		case k < 200 || k >= 250:
			add("c0/value", k, onTime)
			add("c1/value", k, onTime)
			add("c2/value", k, onTime)
		default:
			add("c0/value", k, onTime+hour)
			add("c1/value", k, onTime-hour)
			add("c2/value", k, onTime+tenYears)
		}
		if k < 50 {
			add("c3/value", k, 1000+int64(k)*p) // 1970-01-01T00:00:01Z + k·100 ms
		} else {
			add("c3/value", k, onTime)
		}
	}
	return out
}

// clockRule is the aggregator's rule as documented (aggregate package,
// README "The speed layer"): untrusted first (before 2020, or more than
// 5 min ahead of arrival), then late (older than the series' latest
// accepted reading minus the lateness).
func classify(rs []clockReading, now int64, lateness int64) (accepted, late, untrusted []clockReading) {
	minTime := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	latest := int64(math.MinInt64)
	for _, r := range rs {
		switch {
		case r.ts < minTime || r.ts > now+5*60*1000:
			untrusted = append(untrusted, r)
		case latest != math.MinInt64 && r.ts < latest-lateness:
			late = append(late, r)
		default:
			accepted = append(accepted, r)
			latest = max(latest, r.ts)
		}
	}
	return
}

// TestClockJumps feeds readings whose device clocks jump (+1 h, −1 h,
// +10 years, boot at 1970 then sync) through mosquitto into edged, with an
// alert rule (above 50, clear below 20) on every series and shipping on.
//
// Pass criteria:
//   - no duplicated window (a start served twice) and no negative count
//     or accounting anywhere, 1970 and ten years ahead included;
//   - the windows of accepted readings are exact; every late and
//     untrusted reading is counted on the window its event time falls in,
//     so per series and size Σ count + late + untrusted = readings sent
//     (the sentinel aside);
//   - untrusted readings (1970, +10 years) never reach edged_reading and
//     are all in edged_untrusted; everything else is in edged_reading;
//   - alerts: each cycle fires once (one non-renotify "firing" message per
//     event id), spikes in untrusted readings fire nothing, so the firing
//     events number exactly the spikes among trusted readings;
//   - reconcile: no drift (late readings explain the differences).
func TestClockJumps(t *testing.T) {
	t.Parallel()
	fig := newFigures(t)
	e := newEnv(t, envOptions{device: "rel-clock", ship: true})
	e.cfg.Subscriptions = `- topic: clk/+
  format: json
  series: "{2}/{field}"
  fields: [{path: value}]
  time: {path: ts, format: unix_ms}`
	e.cfg.Extra = `alerts:
  homeassistant: {discovery: false}
  rules:
    - {name: clk-high, series: "*/value", above: 50, clear_below: 20}
`
	d := e.start()

	type alertMsg struct {
		State    string `json:"state"`
		Series   string `json:"series"`
		EventID  string `json:"event_id"`
		Renotify bool   `json:"renotify"`
		Value    float64
	}
	var mu sync.Mutex
	var alertsGot []alertMsg
	sub := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(e.broker.URL).SetClientID("rel-clock-alerts"))
	if tok := sub.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	defer sub.Disconnect(100)
	if tok := sub.Subscribe("edged/rel-clock/alerts/#", 1, func(_ mqtt.Client, m mqtt.Message) {
		var a alertMsg
		if json.Unmarshal(m.Payload(), &a) == nil {
			mu.Lock()
			alertsGot = append(alertsGot, a)
			mu.Unlock()
		}
	}); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}

	t0 := time.Now().Add(-3 * time.Hour).UnixMilli()
	t0 -= t0 % 10_000
	scen := clockScenario(t0)
	pub := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(e.broker.URL).SetClientID("rel-clock-pub"))
	if tok := pub.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	defer pub.Disconnect(100)
	series := []string{"c0/value", "c1/value", "c2/value", "c3/value"}
	var toks []mqtt.Token
	send := func(r clockReading) {
		toks = append(toks, pub.Publish("clk/"+r.series[:2], 1, false, fmt.Sprintf(`{"ts":%d,"value":%g}`, r.ts, r.value)))
	}
	for k := range 450 {
		for _, s := range series {
			send(scen[s][k])
		}
		if k%50 == 0 {
			time.Sleep(20 * time.Millisecond)
		}
	}
	// Sentinels 15 s past each series' latest accepted reading close its
	// windows.
	now := time.Now().UnixMilli()
	want := map[string][3][]clockReading{}
	for _, s := range series {
		acc, late, untr := classify(scen[s], now, 2000)
		want[s] = [3][]clockReading{acc, late, untr}
		last := acc[len(acc)-1].ts
		for _, r := range acc {
			last = max(last, r.ts)
		}
		send(clockReading{s, last + 15_000, 0})
	}
	for _, tok := range toks {
		if !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
			t.Fatalf("publish: %v", tok.Error())
		}
	}

	// Windows, per series and size, over all time.
	far := time.Now().AddDate(11, 0, 0).Unix()
	var windows, lateCounted, untrustedCounted int
	for _, s := range series {
		acc, late, untr := want[s][0], want[s][1], want[s][2]
		for _, size := range windowSizes {
			ms := size.Milliseconds()
			type exp struct {
				agg         Agg
				late, untr  int
				hasAccepted bool
			}
			exps := map[int64]*exp{}
			get := func(ts int64) *exp {
				start := ts - ((ts%ms)+ms)%ms
				if exps[start] == nil {
					exps[start] = &exp{}
				}
				return exps[start]
			}
			for _, r := range acc {
				x := get(r.ts)
				if !x.hasAccepted {
					x.agg = Agg{Min: r.value, Max: r.value}
					x.hasAccepted = true
				}
				x.agg.Count++
				x.agg.Sum += r.value
				x.agg.Min, x.agg.Max = math.Min(x.agg.Min, r.value), math.Max(x.agg.Max, r.value)
			}
			for _, r := range late {
				get(r.ts).late++
			}
			for _, r := range untr {
				get(r.ts).untr++
			}
			var rows []Window
			err := waitFor(30*time.Second, func() bool {
				var err error
				rows, err = d.WindowsRange(s, size, 0, far)
				if err != nil {
					return false
				}
				var l, u int
				for _, r := range rows {
					l += int(r.Fields["late"])
					u += int(r.Fields["untrusted"])
				}
				// The accounting of closed windows arrives with the next tick.
				return l == len(late) && u == len(untr) && len(rows) >= len(exps)
			})
			if err != nil {
				t.Errorf("%s %v: windows do not account for %d late and %d untrusted readings: %d rows", s, size, len(late), len(untr), len(rows))
			}
			seen := map[int64]bool{}
			total := 0
			for _, r := range rows {
				start := r.Start.UnixMilli()
				if seen[start] {
					t.Errorf("%s %v: window %v served twice", s, size, r.Start)
				}
				seen[start] = true
				for name, v := range r.Fields {
					if v < 0 && name != "sum" && name != "min" && name != "max" && name != "mean" &&
						name != "first" && name != "last" && name[0] != 'p' {
						t.Errorf("%s %v %v: negative %s %v", s, size, r.Start, name, v)
					}
				}
				f := r.Fields
				total += int(f["count"] + f["late"] + f["untrusted"] + f["duplicates"] + f["conflicts"])
				x, ok := exps[start]
				if !ok {
					if f["count"] != 0 || f["late"] != 0 || f["untrusted"] != 0 {
						// The sentinel's window stays open; any other is a surprise.
						t.Errorf("%s %v: unexpected window %v %v", s, size, r.Start, f)
					}
					continue
				}
				if int(f["late"]) != x.late || int(f["untrusted"]) != x.untr {
					t.Errorf("%s %v %v: late %v untrusted %v, want %d %d", s, size, r.Start, f["late"], f["untrusted"], x.late, x.untr)
				}
				if x.hasAccepted && (int(f["count"]) != x.agg.Count || f["sum"] != x.agg.Sum || f["min"] != x.agg.Min || f["max"] != x.agg.Max) {
					t.Errorf("%s %v %v: %v, want %+v", s, size, r.Start, f, x.agg)
				}
				if !x.hasAccepted && f["count"] != 0 {
					t.Errorf("%s %v %v: count %v in a window of refused readings only", s, size, r.Start, f["count"])
				}
				windows++
			}
			for start, x := range exps {
				if !seen[start] && x.hasAccepted {
					t.Errorf("%s %v: window %d of accepted readings not served", s, size, start)
				}
			}
			if n := len(acc) + len(late) + len(untr); total != n {
				t.Errorf("%s %v: Σ count+late+untrusted+duplicates+conflicts = %d over the served windows, %d readings sent", s, size, total, n)
			}
			if size == time.Second {
				lateCounted += len(late)
				untrustedCounted += len(untr)
			}
		}
	}

	// Alerts: wait for the last events, then count.
	spikes := 0
	for _, s := range series {
		for _, part := range [][]clockReading{want[s][0], want[s][1]} { // accepted and late: trusted
			for _, r := range part {
				if r.value > 50 {
					spikes++
				}
			}
		}
	}
	var firing, resolved int
	perEvent := map[string]int{}
	waitFor(20*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		firing, resolved = 0, 0
		clear(perEvent)
		for _, a := range alertsGot {
			if a.State == "firing" && !a.Renotify {
				firing++
				perEvent[a.EventID]++
			}
			if a.State == "resolved" {
				resolved++
			}
		}
		return firing >= spikes && resolved >= spikes
	})
	for id, n := range perEvent {
		if n > 1 {
			t.Errorf("alert event %s fired %d times", id, n)
		}
	}
	if firing != spikes || resolved != spikes {
		t.Errorf("alerts: %d firing and %d resolved events, want %d each (one per spike among trusted readings; none for untrusted ones)",
			firing, resolved, spikes)
	}

	WaitShipped(t, d, time.Minute)
	d.Stop(t)

	// Central: untrusted readings only in edged_untrusted.
	wantReading, wantUntrusted := map[Identity]Point{}, map[Identity]Point{}
	for _, s := range series {
		for _, part := range [][]clockReading{want[s][0], want[s][1]} {
			for _, r := range part {
				wantReading[Identity{s, r.ts}] = Point{Value: r.value, Copies: 1}
			}
		}
		for _, r := range want[s][2] {
			wantUntrusted[Identity{s, r.ts}] = Point{Value: r.value, Copies: 1}
		}
	}
	got, err := e.influxQL().Readings("edged_reading", e.cfg.Device)
	if err != nil {
		t.Fatal(err)
	}
	// The sentinels are readings too.
	for id, p := range got {
		if p.Value == 0 {
			wantReading[id] = Point{Copies: 1}
		}
	}
	if diff := Compare(wantReading, got); !diff.OK() {
		t.Errorf("edged_reading: %v", diff)
	}
	gotU, err := e.influxQL().Readings("edged_untrusted", e.cfg.Device)
	if err != nil {
		t.Fatal(err)
	}
	if diff := Compare(wantUntrusted, gotU); !diff.OK() {
		t.Errorf("edged_untrusted: %v", diff)
	}
	rep := Reconcile(t, e.influx.URL, e.influx.Bucket, e.token, e.cfg.Device)

	fig.add("series: c0 +1 h and back, c1 −1 h excursion, c2 +10 years excursion, c3 boot at 1970 then sync (payload timestamps)")
	fig.add("windows served %d (1s and 10s), none twice, none negative; late counted %d, untrusted counted %d (per size)",
		windows, lateCounted, untrustedCounted)
	fig.add("alerts: %d firing / %d resolved for %d trusted spikes; no event id fired twice", firing, resolved, spikes)
	fig.add("central: edged_reading %d points, edged_untrusted %d points (the 1970 and +10 y readings)", len(got), len(gotU))
	fig.add("reconcile: checked %d, exact %d, explained %d (late %d), drift %d",
		rep.Total.Checked, rep.Total.Exact, rep.Total.Explained, rep.Total.Causes.Late, rep.Total.Drift)
}
