package reliability

import (
	"context"
	"fmt"
	"net/url"
	"testing"
	"time"
)

// TestBrokerAndNetworkFaults runs edged through broker restarts and kills
// and network partitions to the broker and to InfluxDB while readings keep
// arriving (500/s). edged reaches mosquitto and influxd through TCP
// proxies the test controls (a stand-in for iptables on loopback: Reset is
// a REJECT with RST, Blackhole a DROP); the publisher talks to mosquitto
// directly, so the broker keeps accepting during a partition. mosquitto
// runs with persistence, saved every second: a kill -9 of mosquitto loses
// what it accepted since its last save, which is mosquitto's durability,
// not edged's; so before a broker kill -9 the publisher pauses for 2 s
// (one save), and the kill finds a backlog queued for edged (behind a
// partition) that the restarted broker must deliver from its database.
//
// Pass criteria:
//   - reconnection: after every fault edged acknowledges new messages
//     again (and ships again after an InfluxDB partition) within 40 s;
//     the time is recorded;
//   - no loss, no duplicate: WAL and InfluxDB hold exactly the accepted
//     readings, windows exact, reconcile without drift;
//   - no leak: once settled after all faults, edged's open fds and
//     go_goroutines are within 4 and 12 of their level before the faults
//     (each fault cycle that leaked would add at least one).
func TestBrokerAndNetworkFaults(t *testing.T) {
	t.Parallel()
	const rate = 500
	fig := newFigures(t)
	e := newEnv(t, envOptions{device: "rel-broker", ship: true, persistence: true})
	bp, err := NewProxy(e.broker.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer bp.Close()
	iu, _ := url.Parse(e.influx.URL)
	ip, err := NewProxy(iu.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer ip.Close()
	e.cfg.Broker, e.cfg.ShipURL = "tcp://"+bp.Addr, "http://"+ip.Addr
	d := e.start()

	load := NewLoad(5, 10*time.Millisecond, 2*time.Minute) // event time ≈ wall clock − 2 min
	pub, err := NewPublisher(e.broker.URL, load)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	stopPublishing := pub.PublishInBackground(context.Background(), rate)
	defer stopPublishing()

	time.Sleep(3 * time.Second)
	base := settled(t, d)

	type fault struct {
		name   string
		inject func()
		influx bool // recovery is shipping resuming, not MQTT acks
	}
	// killWithBacklog: a backlog for edged builds up behind a partition,
	// the broker saves it, is killed and restarted, and must deliver it.
	killWithBacklog := func() {
		bp.Cut(Reset)
		time.Sleep(2 * time.Second)
		if err := pub.Pause(30 * time.Second); err != nil {
			t.Fatal("the publisher's messages were not all accepted before the broker kill")
		}
		time.Sleep(2 * time.Second) // mosquitto's autosave_interval is 1 s
		e.broker.Kill()
		time.Sleep(time.Second)
		e.broker.Restart(t)
		pub.Resume()
		bp.Restore()
	}
	faults := []fault{
		{"mosquitto restart (SIGTERM: state saved) under load", func() { e.broker.Restart(t) }, false},
		{"mosquitto kill -9 with a backlog for edged, down 1 s", killWithBacklog, false},
		{"partition edged→broker, RST, 3 s", func() { bp.Cut(Reset); time.Sleep(3 * time.Second); bp.Restore() }, false},
		{"partition edged→InfluxDB, RST, 3 s", func() { ip.Cut(Reset); time.Sleep(3 * time.Second); ip.Restore() }, true},
		{"partition edged→InfluxDB, DROP, 12 s (beyond the 10 s write timeout)", func() {
			ip.Cut(Blackhole)
			time.Sleep(12 * time.Second)
			ip.Restore()
		}, true},
	}
	if long() {
		// Only keep-alives notice a silent partition: paho's 30 s
		// keep-alive needs up to 45 s.
		faults = append(faults, fault{"partition edged→broker, DROP, 60 s", func() {
			bp.Cut(Blackhole)
			time.Sleep(60 * time.Second)
			bp.Restore()
		}, false})
	}
	rounds := tier(1, 5)
	for round := range rounds {
		for _, f := range faults {
			m0, _ := d.Metrics()
			s0, _ := d.Ship()
			f.inject()
			healed := time.Now()
			var recovered bool
			err := waitFor(40*time.Second, func() bool {
				if f.influx {
					s, err := d.Ship()
					recovered = err == nil && s.Batches > s0.Batches && s.LastShipped.After(healed)
				} else {
					m, err := d.Metrics()
					recovered = err == nil && m["edged_mqtt_connected"] == 1 &&
						m["edged_mqtt_acked_total"] > m0["edged_mqtt_acked_total"]+rate/10
				}
				return recovered
			})
			if err != nil {
				t.Fatalf("round %d, %s: edged did not recover within 40 s", round, f.name)
			}
			if round == 0 || round == rounds-1 {
				fig.add("round %d, %s: recovered %v after the fault ended", round, f.name, time.Since(healed).Round(10*time.Millisecond))
			}
		}
	}
	after := settled(t, d)
	if after.fds > base.fds+4 || after.goroutines > base.goroutines+12 {
		t.Errorf("leak: fds %d → %d, goroutines %d → %d", base.fds, after.fds, base.goroutines, after.goroutines)
	}

	n := stopPublishing()
	if err := pub.Finish(n, time.Minute); err != nil {
		t.Fatal(err)
	}
	win := CheckWindows(t, d, load, n, windowSizes, time.Minute)
	WaitShipped(t, d, time.Minute)
	d.Stop(t)
	want := load.Want(n, true)
	walDiff := e.checkWAL(want)
	infDiff := e.checkInflux(want)
	rep := Reconcile(t, e.influx.URL, e.influx.Bucket, e.token, e.cfg.Device)
	_, accepted, republished := pub.Counts()
	fig.add("%d rounds of %d faults at %d msg/s; %d readings accepted (%d re-sent by the publisher after a broker outage)",
		rounds, len(faults), rate, accepted, republished)
	fig.add("leak check (settled): fds %d → %d, go_goroutines %d → %d", base.fds, after.fds, base.goroutines, after.goroutines)
	fig.add("WAL missing %d (redelivered identities %d); InfluxDB missing %d, extra %d, wrong %d; windows exact %d; reconcile drift %d of %d",
		len(walDiff.Missing), walDiff.Duplicated, len(infDiff.Missing), len(infDiff.Extra), len(infDiff.WrongValue),
		win.Windows, rep.Total.Drift, rep.Total.Checked)
}

type level struct{ fds, goroutines int }

func (l level) String() string { return fmt.Sprintf("%d fds, %d goroutines", l.fds, l.goroutines) }

// settled waits until edged's fd and goroutine counts have been stable for
// a few seconds (connections being set up or torn down settle) and returns
// them.
func settled(t *testing.T, d *Edged) level {
	t.Helper()
	read := func() level {
		p, err := d.Proc()
		if err != nil {
			t.Fatal(err)
		}
		m, err := d.Metrics()
		if err != nil {
			t.Fatal(err)
		}
		return level{p.FDs, int(m["go_goroutines"])}
	}
	prev := read()
	stable := 0
	for range 30 {
		time.Sleep(500 * time.Millisecond)
		cur := read()
		if cur == prev {
			stable++
			if stable >= 4 {
				return cur
			}
		} else {
			stable = 0
		}
		prev = cur
	}
	return prev
}
