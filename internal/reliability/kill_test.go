package reliability

import (
	"context"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// TestKill9DuringIngest kills edged with SIGKILL at random moments while a
// publisher sends QoS 1 readings through mosquitto and shipping to the real
// InfluxDB is on, and restarts it each time (short tier 30 trials, long
// 300).
//
// Pass criteria:
//   - no loss: every reading the broker accepted (PUBACK) is in the WAL and
//     in InfluxDB (edged_reading) after the drain, with its value;
//   - no duplicate: InfluxDB holds exactly the published identities, each
//     once (nothing stored under another time);
//   - the edge windows (/api/v1/query) equal the exact aggregates the test
//     computes, i.e. a run without crashes; redelivered copies are counted
//     (duplicates or late) and left out of the values;
//   - the batch layer agrees: edged-reconcile's job finds no drift and
//     nothing pending, and the served view is exact;
//   - restart-to-ingest ≤ 2 s at every trial: from process start to its
//     first MQTT acknowledgement (edged acknowledges only durable records);
//   - `edged wal verify` reports no corruption.
func TestKill9DuringIngest(t *testing.T) {
	t.Parallel()
	trials := tier3(8, 30, 300)
	const rate = 800 // messages/s
	fig := newFigures(t)
	e := newEnv(t, envOptions{device: "rel-kill", ship: true})
	d := e.start()
	// 100 readings/s per sensor, 100 ms apart: event time runs 10× faster
	// than the wall clock, starting far enough back to stay in the past.
	load := NewLoad(8, 100*time.Millisecond, tier(30*time.Minute, 3*time.Hour))
	pub, err := NewPublisher(e.broker.URL, load)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()

	stopPublishing := pub.PublishInBackground(context.Background(), rate)
	defer stopPublishing()

	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 8))
	var ready, ingest durations
	for trial := range trials {
		time.Sleep(jitter(rng, 50*time.Millisecond, 700*time.Millisecond))
		d.Kill()
		d = StartEdged(t, edgedBin, e.cfgPath, e.port)
		ready = append(ready, d.WaitReady(t, 10*time.Second))
		in, ok := d.WaitIngest(10 * time.Second)
		if !ok {
			t.Fatalf("trial %d: no MQTT message acknowledged within 10 s of the restart", trial)
		}
		ingest = append(ingest, in)
		if in > 2*time.Second {
			t.Errorf("trial %d: restart-to-ingest %v > 2s", trial, in)
		}
	}
	n := stopPublishing()
	if err := pub.Finish(n, time.Minute); err != nil {
		t.Fatal(err)
	}
	win := CheckWindows(t, d, load, n, windowSizes, time.Minute)
	WaitShipped(t, d, time.Minute)
	d.Stop(t) // the final ship

	want := load.Want(n, true)
	walDiff := e.checkWAL(want)
	verify := VerifyWAL(t, edgedBin, e.cfg.DataDir)
	infDiff := e.checkInflux(want)
	rep := Reconcile(t, e.influx.URL, e.influx.Bucket, e.token, e.cfg.Device)
	if rep.Total.Checked != win.Windows {
		t.Errorf("reconcile checked %d windows, the edge has %d", rep.Total.Checked, win.Windows)
	}
	served := CheckServed(t, e.influx.URL, e.influx.Bucket, e.token, e.cfg.Device, load, n, windowSizes)

	published1, accepted, republished := pub.Counts()
	fig.add("trials %d (kill -9 at random moments, 50–700 ms apart, %d msg/s QoS 1, shipping on)", trials, rate)
	fig.add("readings %d accepted by the broker (%d publishes, %d re-sent by the publisher)", accepted, published1, republished)
	fig.add("WAL: missing %d, wrong %d; %d identities held twice (redeliveries); verify: %s",
		len(walDiff.Missing), len(walDiff.WrongValue), walDiff.Duplicated, strings.ReplaceAll(verify, "\n", " "))
	fig.add("InfluxDB: points %d for %d identities: missing %d, extra %d, wrong %d",
		infDiff.Got, infDiff.Expected, len(infDiff.Missing), len(infDiff.Extra), len(infDiff.WrongValue))
	fig.add("edge windows: %d exact (1s and 10s); %v redelivered copies counted and left out per window size",
		win.Windows, win.LeftOut/float64(len(windowSizes)))
	fig.add("reconcile: checked %d, exact %d, explained %d, drift %d, pending %d; served rows %d from the batch view",
		rep.Total.Checked, rep.Total.Exact, rep.Total.Explained, rep.Total.Drift, rep.Total.Pending, served)
	fig.add("start → ready: %v", ready)
	fig.add("start → first ack (restart-to-ingest): %v", ingest)
}
