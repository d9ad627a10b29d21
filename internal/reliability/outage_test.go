package reliability

import (
	"context"
	"sync"
	"testing"
	"time"
)

// sampler records edged's RSS every interval while it runs.
type sampler struct {
	mu   sync.Mutex
	max  int64
	last int64
	stop chan struct{}
	done chan struct{}
}

func sample(d *Edged, every time.Duration) *sampler {
	s := &sampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		tk := time.NewTicker(every)
		defer tk.Stop()
		for {
			if p, err := d.Proc(); err == nil {
				s.mu.Lock()
				s.max, s.last = max(s.max, p.RSS), p.RSS
				s.mu.Unlock()
			}
			select {
			case <-s.stop:
				return
			case <-tk.C:
			}
		}
	}()
	return s
}

func (s *sampler) close() (maxRSS, last int64) {
	close(s.stop)
	<-s.done
	return s.max, s.last
}

const mib = 1 << 20

// TestInfluxOutage takes InfluxDB down (kill -9) for 20 s (short tier) or
// 10 minutes (long tier) while 1,000 readings/s arrive over MQTT, then
// brings it back.
//
// Pass criteria:
//   - zero loss and zero duplicates: after the drain, InfluxDB holds
//     exactly the accepted identities with their values; the WAL has them
//     all; the windows are exact; reconcile finds no drift;
//   - bounded memory: edged's RSS during the outage stays within 64 MiB
//     (short) / 96 MiB (long) of its level before it: the backlog waits in
//     the WAL, not in memory;
//   - ingest never stops: the broker's messages keep being acknowledged;
//   - the drain rate (readings confirmed per second once InfluxDB answers
//     again) is recorded, and must exceed the ingest rate by 3× (SPEC §7:
//     the backlog drains much faster than it accrued).
func TestInfluxOutage(t *testing.T) {
	t.Parallel()
	const rate, sensors = 1000, 10
	outage := tier3(10*time.Second, 20*time.Second, 10*time.Minute)
	fig := newFigures(t)
	e := newEnv(t, envOptions{device: "rel-outage", ship: true})
	d := e.start()
	// 100 readings/s per sensor, 10 ms apart: event time follows the wall
	// clock, two minutes behind.
	load := NewLoad(sensors, 10*time.Millisecond, 2*time.Minute)
	pub, err := NewPublisher(e.broker.URL, load)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	stopPublishing := pub.PublishInBackground(context.Background(), rate)
	defer stopPublishing()

	time.Sleep(5 * time.Second) // warm up: shipping in its steady state
	WaitShipped(t, d, 30*time.Second)
	before, err := d.Proc()
	if err != nil {
		t.Fatal(err)
	}
	m0, _ := d.Metrics()
	e.influx.Kill()
	down := time.Now()
	s := sample(d, time.Second)
	time.Sleep(outage)
	maxRSS, _ := s.close()
	m1, _ := d.Metrics()
	st, _ := d.Ship()
	backlog := st.LagRecords
	acked := m1["edged_mqtt_acked_total"] - m0["edged_mqtt_acked_total"]
	if acked < float64(rate)*outage.Seconds()/2 {
		t.Errorf("only %v messages acknowledged during the %v outage", acked, outage)
	}
	if grow, bound := maxRSS-before.RSS, int64(tier(64, 96))*mib; grow > bound {
		t.Errorf("RSS grew by %d MiB during the outage (bound %d MiB)", grow/mib, bound/mib)
	}

	e.influx.Restart(t)
	up := time.Now()
	var first time.Time
	var firstPoints uint64
	if err := waitFor(5*time.Minute, func() bool {
		st, err := d.Ship()
		if err == nil && first.IsZero() && st.LastShipped.After(up) {
			first, firstPoints = time.Now(), st.Readings
		}
		return err == nil && !first.IsZero() && st.LagRecords <= 1 && !st.LastErrorAt.After(st.LastShipped)
	}); err != nil {
		t.Fatal("the backlog did not drain within 5 minutes of InfluxDB's return")
	}
	drained := time.Now()
	st, _ = d.Ship()
	drainRate := float64(st.Readings-firstPoints) / drained.Sub(first).Seconds()
	if drainRate < 3*rate {
		t.Errorf("drain rate %.0f readings/s is under 3× the ingest rate (%d/s)", drainRate, rate)
	}

	n := stopPublishing()
	if err := pub.Finish(n, time.Minute); err != nil {
		t.Fatal(err)
	}
	win := CheckWindows(t, d, load, n, windowSizes, time.Minute)
	WaitShipped(t, d, time.Minute)
	after, _ := d.Proc()
	d.Stop(t)
	want := load.Want(n, true)
	walDiff := e.checkWAL(want)
	infDiff := e.checkInflux(want)
	rep := Reconcile(t, e.influx.URL, e.influx.Bucket, e.token, e.cfg.Device)

	fig.add("outage %v (influxd kill -9, then restart) at %d readings/s over MQTT", outage, rate)
	fig.add("during the outage: %v messages acknowledged; backlog at InfluxDB's return %d records", acked, backlog)
	fig.add("RSS before %d MiB, max during the outage %d MiB (+%d MiB), after the drain %d MiB",
		before.RSS/mib, maxRSS/mib, (maxRSS-before.RSS)/mib, after.RSS/mib)
	fig.add("first batch confirmed %v after InfluxDB answered (shipper backoff), drained %v later: drain rate %.0f readings/s (%.1f× ingest)",
		first.Sub(up).Round(time.Millisecond), drained.Sub(first).Round(time.Millisecond), drainRate, drainRate/rate)
	fig.add("readings %d: InfluxDB missing %d, extra %d, wrong %d (points %d); WAL missing %d",
		infDiff.Expected, len(infDiff.Missing), len(infDiff.Extra), len(infDiff.WrongValue), infDiff.Got, len(walDiff.Missing))
	fig.add("windows exact %d; reconcile checked %d, drift %d", win.Windows, rep.Total.Checked, rep.Total.Drift)
	_ = down
}
