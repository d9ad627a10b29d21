package notify_test

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/edged-io/edged/alerts/hass"
	"github.com/edged-io/edged/alerts/notify"
	"github.com/edged-io/edged/internal/servicetest"
)

const alerts = "edged/pi/alerts/"

// lsns lists the events the messages carry (their value is their LSN),
// dropping QoS 1 redeliveries of an identical message.
func lsns(t *testing.T, ms []msg) (list []int, dups int) {
	t.Helper()
	seen := map[msg]bool{}
	for _, m := range ms {
		m.Retained = false
		if seen[m] {
			dups++
			continue
		}
		seen[m] = true
		v, ok := m.field("value").(float64)
		if !ok {
			t.Fatalf("message without a value: %s %s", m.Topic, m.Payload)
		}
		list = append(list, int(v))
	}
	return list, dups
}

func seq(from, to int) []int {
	var s []int
	for i := from; i <= to; i++ {
		s = append(s, i)
	}
	return s
}

// TestDelivery scripts a few alert transitions: a subscriber sees them in
// order, live (retain flag off), with the documented payload; a late
// subscriber sees each alert's current state, retained.
func TestDelivery(t *testing.T) {
	t.Parallel()
	b := servicetest.StartMosquitto(t, servicetest.MosquittoOptions{})
	sub := subscribe(t, b.URL, "edged/#")
	o := options(t, b.URL)
	p, _ := start(t, o)

	resolved := ev(4, 0, "too_hot", "greenhouse/air/temperature", "resolved")
	resolved.Resolved = time.Date(2025, 6, 1, 12, 30, 0, 5, time.UTC).UnixNano()
	dry := ev(3, 1, "dry", "greenhouse/soil", "firing")
	dry.Value = math.NaN()
	renotify := ev(5, 0, "dry", "greenhouse/soil", "firing")
	renotify.Renotify, renotify.Value = true, math.Inf(1)
	events := []notify.Event{
		ev(1, 0, "too_hot", "greenhouse/air/temperature", "pending"),
		ev(2, 0, "too_hot", "greenhouse/air/temperature", "firing"),
		ev(3, 0, "wet", "greenhouse/soil", "pending"),
		dry, resolved, renotify,
	}
	for _, e := range events {
		p.Publish(e)
	}
	got := sub.waitN(t, alerts, len(events))
	type want struct {
		topic, state, resolved string
		value                  any
		renotify               bool
	}
	wants := []want{
		{alerts + "too_hot/greenhouse/air/temperature", "pending", "", 1.0, false},
		{alerts + "too_hot/greenhouse/air/temperature", "firing", "", 2.0, false},
		{alerts + "wet/greenhouse/soil", "pending", "", 3.0, false},
		{alerts + "dry/greenhouse/soil", "firing", "", nil, false},
		{alerts + "too_hot/greenhouse/air/temperature", "resolved", "2025-06-01T12:30:00.000000005Z", 4.0, false},
		{alerts + "dry/greenhouse/soil", "firing", "", nil, true},
	}
	if len(got) != len(wants) {
		t.Fatalf("received %d alert messages, want %d:\n%s", len(got), len(wants), dump(got))
	}
	for i, w := range wants {
		m := got[i]
		res, _ := m.field("resolved").(string)
		if m.Topic != w.topic || m.Retained || m.field("state") != w.state || m.field("value") != w.value ||
			res != w.resolved || m.field("renotify") != w.renotify {
			t.Errorf("message %d: %s retained=%v %s\nwant topic %s state %s value %v resolved %q renotify %v (live, not retained)",
				i, m.Topic, m.Retained, m.Payload, w.topic, w.state, w.value, w.resolved, w.renotify)
		}
	}
	var full map[string]any
	if err := json.Unmarshal([]byte(got[1].Payload), &full); err != nil {
		t.Fatal(err)
	}
	wantFull := map[string]any{
		"rule": "too_hot", "device": "pi", "series": "greenhouse/air/temperature", "state": "firing",
		"value": 2.0, "threshold": 30.0, "severity": "warning", "labels": map[string]any{"zone": "north"},
		"started": "2025-06-01T12:00:00Z", "event_id": "cycle-too_hot", "renotify": false,
	}
	if !reflect.DeepEqual(full, wantFull) {
		t.Errorf("payload\n%v\nwant\n%v", full, wantFull)
	}

	late := subscribe(t, b.URL, alerts+"#")
	current := late.waitN(t, alerts, 3)
	states := map[string]string{}
	for _, m := range current {
		if !m.Retained {
			t.Errorf("late subscriber got %s live, want retained", m.Topic)
		}
		states[strings.TrimPrefix(m.Topic, alerts)] = fmt.Sprint(m.field("state"), " ", m.field("renotify"))
	}
	wantStates := map[string]string{
		"too_hot/greenhouse/air/temperature": "resolved false",
		"wet/greenhouse/soil":                "pending false",
		"dry/greenhouse/soil":                "firing true",
	}
	if !reflect.DeepEqual(states, wantStates) {
		t.Errorf("retained states %v, want %v", states, wantStates)
	}

	if lsn, s := p.Delivered(); lsn != 5 || s != 0 {
		t.Errorf("Delivered() = %d, %d; want 5, 0", lsn, s)
	}
	st := p.Stats()
	if st.Delivered != 6 || st.Queued != 0 || !st.Connected || st.Coalesced != 0 {
		t.Errorf("Stats() = %+v", st)
	}
	waitUntil(t, "the delivered mark is saved", func() bool {
		b, _ := os.ReadFile(filepath.Join(o.StateDir, "alerts-delivered"))
		return string(b) == `{"lsn":5,"seq":0}`+"\n"
	})
}

// TestStatus checks the status topic: "online" on connecting, the broker's
// last will "offline" when the connection dies, "online" again after the
// reconnection, and "offline" on a clean stop.
func TestStatus(t *testing.T) {
	t.Parallel()
	b := servicetest.StartMosquitto(t, servicetest.MosquittoOptions{})
	px := startProxy(t, b.Addr)
	const status = "edged/pi/status"
	sub := subscribe(t, b.URL, status)
	p, stop := start(t, options(t, px.URL))
	payloads := func(want ...string) func([]msg) bool {
		return func(ms []msg) bool {
			var got []string
			for _, m := range ms {
				got = append(got, m.Payload)
			}
			return strings.Join(got, " ") == strings.Join(want, " ")
		}
	}
	sub.waitFor(t, status, "online", payloads("online"))
	retained := subscribe(t, b.URL, status)
	if ms := retained.waitN(t, status, 1); !ms[0].Retained || ms[0].Payload != "online" {
		t.Errorf("late subscriber: %s", dump(ms))
	}

	px.cut() // the broker sees the connection die without DISCONNECT
	sub.waitFor(t, status, "the will, then online again", payloads("online", "offline", "online"))
	waitUntil(t, "connected", func() bool { return p.Stats().Connected })

	p.Publish(ev(1, 0, "r", "s", "firing")) // still delivers after the reconnection
	sub2 := subscribe(t, b.URL, alerts+"#")
	sub2.waitN(t, alerts, 1)

	stop()
	sub.waitFor(t, status, "offline on a clean stop", payloads("online", "offline", "online", "offline"))
	if p.Stats().Connected {
		t.Error("Connected after stop")
	}
}

// TestBrokerRestart stops the broker while events keep coming: they wait in
// the publisher's queue and all arrive, in order, after the restart.
func TestBrokerRestart(t *testing.T) {
	t.Parallel()
	// Persistence keeps the subscriber's session (and what it misses while
	// it reconnects); the publisher's queue owes nothing to it.
	b := servicetest.StartMosquitto(t, servicetest.MosquittoOptions{Persistence: true})
	sub := subscriber(t, b.URL, "sub-"+t.Name(), false, alerts+"#")
	p, _ := start(t, options(t, b.URL))
	topics := []string{"greenhouse/a", "greenhouse/b", "greenhouse/c"}
	publish := func(from, to int) {
		for i := from; i <= to; i++ {
			p.Publish(ev(uint64(i), 0, "rule", topics[i%3], "firing"))
		}
	}
	publish(1, 2)
	sub.waitN(t, alerts, 2)

	b.Stop()
	waitUntil(t, "disconnected", func() bool { return !p.Stats().Connected })
	publish(3, 12)
	if q := p.Stats().Queued; q != 10 {
		t.Errorf("Queued = %d with the broker down, want 10", q)
	}
	b.Restart(t)
	publish(13, 14)

	got := sub.waitFor(t, alerts, "14 distinct events", func(ms []msg) bool {
		l, _ := lsns(t, ms)
		return len(l) >= 14
	})
	list, dups := lsns(t, got)
	if !reflect.DeepEqual(list, seq(1, 14)) {
		t.Errorf("events received %v, want 1…14 in order", list)
	}
	if st := p.Stats(); st.Delivered != 14 || st.Coalesced != 0 {
		t.Errorf("Stats() = %+v", st)
	}
	t.Logf("%d QoS 1 redeliveries", dups)
}

// TestRetryInFlight loses published events on the way to the broker: no
// PUBACK comes, the connection dies, and after the reconnection the events
// are sent again, in order, before anything newer.
func TestRetryInFlight(t *testing.T) {
	t.Parallel()
	b := servicetest.StartMosquitto(t, servicetest.MosquittoOptions{})
	px := startProxy(t, b.Addr)
	sub := subscribe(t, b.URL, alerts+"#")
	p, _ := start(t, options(t, px.URL))
	p.Publish(ev(1, 0, "r", "a", "firing"))
	sub.waitN(t, alerts, 1)

	px.blackhole.Store(true) // PUBLISH packets vanish: no PUBACK
	for i := 2; i <= 5; i++ {
		p.Publish(ev(uint64(i), 0, "r", []string{"a", "b"}[i%2], "firing"))
	}
	time.Sleep(100 * time.Millisecond) // sent, unacknowledged
	if st := p.Stats(); st.Queued != 4 || st.Delivered != 1 {
		t.Errorf("Stats() = %+v with the acknowledgements lost, want 4 queued", st)
	}
	px.blackhole.Store(false)
	px.cut()
	p.Publish(ev(6, 0, "r", "a", "resolved"))
	got := sub.waitN(t, alerts, 6)
	if list, _ := lsns(t, got); !reflect.DeepEqual(list, seq(1, 6)) {
		t.Errorf("events received %v, want 1…6 in order", list)
	}
	// The first of the lost events went out alone, the others may have
	// followed it in one batch.
	if st := p.Stats(); st.Retries < 1 || st.Delivered != 6 {
		t.Errorf("Stats() = %+v, want retries, 6 delivered", st)
	}
}

// TestRestartSafety restarts the publisher on the same state directory and
// feeds it the replayed events again: subscribers see each event once.
func TestRestartSafety(t *testing.T) {
	t.Parallel()
	b := servicetest.StartMosquitto(t, servicetest.MosquittoOptions{})
	sub := subscribe(t, b.URL, alerts+"#")
	o := options(t, b.URL)
	old := []notify.Event{
		ev(1, 0, "r", "a", "pending"), ev(2, 0, "r", "a", "firing"), ev(3, 0, "r", "b", "pending"),
		ev(3, 1, "q", "b", "firing"), ev(4, 0, "r", "b", "firing"),
	}
	p1, stop1 := start(t, o)
	for _, e := range old {
		p1.Publish(e)
	}
	sub.waitN(t, alerts, len(old))
	stop1()
	if lsn, s := p1.Delivered(); lsn != 4 || s != 0 {
		t.Fatalf("Delivered() = %d, %d; want 4, 0", lsn, s)
	}

	p2, _ := start(t, o)
	if lsn, s := p2.Delivered(); lsn != 4 || s != 0 {
		t.Fatalf("restarted Delivered() = %d, %d; want the saved 4, 0", lsn, s)
	}
	for _, e := range old { // the engine's replay
		p2.Publish(e)
	}
	after := ev(4, 1, "r", "a", "resolved") // same LSN as a delivered event, later Seq
	after.Value = 41
	for _, e := range []notify.Event{after, ev(60, 0, "r", "b", "resolved"), ev(70, 0, "q", "b", "resolved")} {
		p2.Publish(e)
	}
	got := sub.waitFor(t, alerts, "event 70", func(ms []msg) bool {
		return len(ms) > 0 && ms[len(ms)-1].field("value") == 70.0
	})
	var values []any
	for _, m := range got {
		values = append(values, m.field("value"))
	}
	want := []any{1.0, 2.0, 3.0, 3.0, 4.0, 41.0, 60.0, 70.0}
	if !reflect.DeepEqual(values, want) {
		t.Errorf("events received (by value) %v, want %v", values, want)
	}
	if st := p2.Stats(); st.Skipped != uint64(len(old)) || st.Delivered != 3 {
		t.Errorf("restarted Stats() = %+v, want 5 skipped, 3 delivered", st)
	}
}

// TestCoalesce fills the queue while not connected: only the latest event
// per alert survives, one warning is logged, and the survivors are
// delivered in order.
func TestCoalesce(t *testing.T) {
	t.Parallel()
	b := servicetest.StartMosquitto(t, servicetest.MosquittoOptions{})
	var logs servicetest.LogBuffer
	o := options(t, b.URL)
	o.QueueLimit = 5
	o.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	p, err := notify.New(o)
	if err != nil {
		t.Fatal(err)
	}
	for i, topic := range strings.Fields("a b a b a c a b c") {
		p.Publish(ev(uint64(i+1), 0, "r", topic, "firing"))
	}
	if st := p.Stats(); st.Queued != 3 || st.Coalesced != 6 {
		t.Errorf("Stats() = %+v, want 3 queued, 6 coalesced", st)
	}
	if n := logs.Count("queue full"); n != 1 {
		t.Errorf("%d queue-full warnings, want 1 per episode", n)
	}

	sub := subscribe(t, b.URL, alerts+"#")
	run(t, p)
	got := sub.waitN(t, alerts, 3)
	if list, _ := lsns(t, got); !reflect.DeepEqual(list, []int{7, 8, 9}) {
		t.Errorf("delivered %v, want the latest per topic in order: 7 8 9", list)
	}
	waitUntil(t, "the episode ends", func() bool { return logs.Count("caught up") == 1 })
}

// TestDiscovery checks that discovery configs are published, retained,
// after "online" and before the alert states, and again when Home
// Assistant announces that it is online.
func TestDiscovery(t *testing.T) {
	t.Parallel()
	b := servicetest.StartMosquitto(t, servicetest.MosquittoOptions{})
	sub := subscribe(t, b.URL, "edged/#", "homeassistant/#")
	o := options(t, b.URL)
	o.Discovery = notify.Discovery{Enabled: true, Device: hass.Device{Name: "Greenhouse", Model: "Pi 4", SWVersion: "test"}}
	p, err := notify.New(o)
	if err != nil {
		t.Fatal(err)
	}
	series := hass.SeriesInfo{Series: "greenhouse/temperature", Unit: "°C", StateTopic: "edged/pi/agg/1m0s/greenhouse/temperature",
		ValueTemplate: "{{ value_json.mean }}"}
	for range 2 { // the second time is a no-op
		if err := p.AnnounceSeries(series); err != nil {
			t.Fatal(err)
		}
		if err := p.AnnounceAlert(hass.AlertInfo{Rule: "too_hot", Series: "greenhouse/temperature"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.AnnounceSeries(hass.SeriesInfo{Series: "x"}); err == nil {
		t.Error("AnnounceSeries without a state topic: no error")
	}
	run(t, p)
	p.Publish(ev(1, 0, "dry", "greenhouse/soil", "firing")) // announces its own alert

	const (
		sensorCfg = "homeassistant/sensor/pi/edged_pi_greenhouse_temperature/config"
		hotCfg    = "homeassistant/binary_sensor/pi/edged_pi_alert_too_hot_greenhouse_temperature/config"
		dryCfg    = "homeassistant/binary_sensor/pi/edged_pi_alert_dry_greenhouse_soil/config"
		dryState  = alerts + "dry/greenhouse/soil"
	)
	got := sub.waitN(t, "", 5)
	var order []string
	for _, m := range got {
		order = append(order, m.Topic)
	}
	if want := []string{"edged/pi/status", sensorCfg, hotCfg, dryCfg, dryState}; !reflect.DeepEqual(order, want) {
		t.Errorf("published\n%s\nwant topics %v", dump(got), want)
	}
	for _, m := range got[1:4] {
		if m.field("availability_topic") != "edged/pi/status" || m.field("unique_id") == nil {
			t.Errorf("config %s: %s", m.Topic, m.Payload)
		}
	}
	if got[3].field("state_topic") != dryState || got[3].field("device_class") != "problem" {
		t.Errorf("alert config: %s", got[3].Payload)
	}

	publishRaw(t, b.URL, "homeassistant/status", "online", false) // Home Assistant restarted
	sub.waitFor(t, "homeassistant/", "every config again", func(ms []msg) bool {
		n := map[string]int{}
		for _, m := range ms {
			n[m.Topic]++
		}
		return n[sensorCfg] == 2 && n[hotCfg] == 2 && n[dryCfg] == 2
	})
	late := subscribe(t, b.URL, "homeassistant/+/pi/#")
	for _, m := range late.waitN(t, "homeassistant/", 3) {
		if !m.Retained {
			t.Errorf("config %s not retained", m.Topic)
		}
	}
	waitUntil(t, "6 announcements", func() bool { st := p.Stats(); return st.Announcements == 6 && st.Entities == 3 })
}

// TestDiscoveryDisabled: nothing goes to homeassistant/, and Home
// Assistant's status is ignored.
func TestDiscoveryDisabled(t *testing.T) {
	t.Parallel()
	b := servicetest.StartMosquitto(t, servicetest.MosquittoOptions{})
	sub := subscribe(t, b.URL, "#")
	p, err := notify.New(options(t, b.URL))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AnnounceSeries(hass.SeriesInfo{Series: "s", StateTopic: "edged/pi/s"}); err != nil {
		t.Fatal(err)
	}
	run(t, p)
	p.Publish(ev(1, 0, "r", "s", "firing"))
	sub.waitN(t, alerts, 1)
	publishRaw(t, b.URL, "homeassistant/status", "online", false)
	p.Publish(ev(2, 0, "r", "s", "resolved"))
	sub.waitN(t, alerts, 2) // configs, if any, would have come before
	for _, m := range sub.received("homeassistant/") {
		if m.Topic != "homeassistant/status" {
			t.Errorf("discovery disabled, yet published %s", m.Topic)
		}
	}
	if st := p.Stats(); st.Entities != 0 || st.Announcements != 0 {
		t.Errorf("Stats() = %+v", st)
	}
}

// TestDeliveryOverTLS: alerts reach a broker whose TLS listener requires
// a client certificate; with a CA that did not sign the broker's
// certificate nothing is delivered and the log says what to fix.
func TestDeliveryOverTLS(t *testing.T) {
	t.Parallel()
	ca, other := servicetest.NewCA(t, "edged"), servicetest.NewCA(t, "untrusted")
	server, client := ca.Server(t, "broker"), ca.Client(t, "edged-pi")
	b := servicetest.StartMosquitto(t, servicetest.MosquittoOptions{TLS: &servicetest.MosquittoTLS{
		CertFile: server.CertFile, KeyFile: server.KeyFile, CAFile: ca.CertFile, RequireCertificate: true, UseIdentityAsUsername: true}})
	sub := subscribe(t, b.URL, "edged/#")
	tlsConfig := func(trust *servicetest.CA) *tls.Config {
		tc := &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: x509.NewCertPool()}
		tc.RootCAs.AddCert(trust.Cert)
		pair, err := tls.LoadX509KeyPair(client.CertFile, client.KeyFile)
		if err != nil {
			t.Fatal(err)
		}
		tc.Certificates = []tls.Certificate{pair}
		return tc
	}

	var logs servicetest.LogBuffer
	o := options(t, b.TLSURL)
	o.Conn.TLS = tlsConfig(other)
	o.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	p, stop := start(t, o)
	p.Publish(ev(1, 0, "too_hot", "greenhouse/air", "firing"))
	waitUntil(t, "the refusal logged", func() bool { return logs.Count("level=ERROR") > 0 })
	stop()
	if logs.Count("mqtt.tls.ca_file") == 0 || len(sub.received("edged/")) != 0 || p.Stats().Delivered != 0 {
		t.Fatalf("untrusted broker: %d messages received, stats %+v; log:\n%s", len(sub.received("edged/")), p.Stats(), logs.String())
	}

	o = options(t, b.TLSURL)
	o.Conn.TLS = tlsConfig(ca)
	p, _ = start(t, o)
	p.Publish(ev(1, 0, "too_hot", "greenhouse/air", "firing"))
	got := sub.waitN(t, alerts, 1)
	if got[0].field("state") != "firing" {
		t.Errorf("received %s", dump(got))
	}
}
