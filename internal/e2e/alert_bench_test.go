package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/edged-io/edged/internal/servicetest"
)

// BenchmarkAlertLatency: the time from publishing a threshold-crossing
// reading to the broker to receiving its alert from edged, while a
// background publisher sends 10,000 other readings/s (QoS 1) through the
// same daemon. The reference, measured in the same run on the same broker
// and interleaved with the probes: the broker's own publish→receive
// latency for a QoS 1 message. The target is alert p99 ≤ 2 × broker p99 +
// 5 ms; x-target is alert p99 over that bound (≤ 1 meets it).
// EDGED_BENCH_PROBES sets the number of probes (default 200) and
// EDGED_BENCH_FSYNC the WAL's fsync policy (default interval).
func BenchmarkAlertLatency(b *testing.B) {
	probes := 200
	if s := os.Getenv("EDGED_BENCH_PROBES"); s != "" {
		probes, _ = strconv.Atoi(s)
	}
	fsync := "interval"
	if s := os.Getenv("EDGED_BENCH_FSYNC"); s != "" {
		fsync = s
	}
	var alert, ref []time.Duration
	var background float64
	for b.Loop() {
		broker := servicetest.StartMosquitto(b, servicetest.MosquittoOptions{ExtraConfig: brokerLimits})
		dir := b.TempDir()
		port := servicetest.FreePort(b)
		cfg := writeConfig(b, dir, broker.URL, port, fmt.Sprintf(`alerts:
  rules:
    - {name: probe, series: probe/value, above: 100, clear_below: 50}
`))
		// writeConfig fixes fsync=interval; the probe may ask otherwise.
		if fsync != "interval" {
			y, _ := os.ReadFile(cfg)
			os.WriteFile(cfg, []byte(strings.Replace(string(y), "wal: {fsync: interval}", "wal: {fsync: "+fsync+"}", 1)), 0o644)
		}
		d := startEdged(b, cfg, port)
		alert, ref, background = measureAlertLatency(b, broker.URL, probes)
		d.stop(b)
		os.RemoveAll(filepath.Join(dir, "data"))
	}
	p := func(ds []time.Duration, q float64) float64 {
		s := slices.Clone(ds)
		slices.Sort(s)
		return float64(s[min(len(s)-1, int(q*float64(len(s))))].Microseconds()) / 1000
	}
	b.ReportMetric(p(alert, 0.5), "alert-p50-ms")
	b.ReportMetric(p(alert, 0.99), "alert-p99-ms")
	b.ReportMetric(p(ref, 0.5), "broker-p50-ms")
	b.ReportMetric(p(ref, 0.99), "broker-p99-ms")
	b.ReportMetric(p(alert, 0.99)/(2*p(ref, 0.99)+5), "x-target")
	b.ReportMetric(background, "background-msgs/s")
	b.ReportMetric(float64(probes-len(alert)), "alerts-missing")
}

// measureAlertLatency runs the background load and the probes; it returns
// the alert and reference latencies and the background rate achieved.
func measureAlertLatency(b *testing.B, url string, probes int) (alert, ref []time.Duration, rate float64) {
	b.Helper()
	connect := func(id string) mqtt.Client {
		c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(url).SetClientID(id).SetCleanSession(true))
		if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			b.Fatalf("%s: %v", id, tok.Error())
		}
		return c
	}
	var (
		mu      sync.Mutex
		sent    = map[string]time.Time{} // probe key → publish time
		alertCh = make(chan time.Duration, probes)
		refCh   = make(chan time.Duration, probes)
	)
	arrived := func(key string, ch chan time.Duration) {
		now := time.Now()
		mu.Lock()
		t0, ok := sent[key]
		delete(sent, key)
		mu.Unlock()
		if ok {
			ch <- now.Sub(t0)
		}
	}
	sub := connect("latency-sub")
	defer sub.Disconnect(100)
	// An alert message says which probe crossed: firing carries the high
	// value, resolved the low one; both are unique per probe.
	sub.Subscribe("edged/e2e/alerts/probe/#", 1, func(_ mqtt.Client, m mqtt.Message) {
		if m.Retained() {
			return
		}
		var v struct {
			Value float64 `json:"value"`
		}
		if json.Unmarshal(m.Payload(), &v) == nil {
			arrived(fmt.Sprintf("a%g", v.Value), alertCh)
		}
	}).Wait()
	sub.Subscribe("latency/ref", 1, func(_ mqtt.Client, m mqtt.Message) { arrived("r"+string(m.Payload()), refCh) }).Wait()

	// Background: 10,000 readings/s over 100 series, QoS 1, paced per ms.
	stop := make(chan struct{})
	var bg atomic.Int64
	var wg sync.WaitGroup
	load := connect("latency-load")
	defer load.Disconnect(100)
	start := time.Now()
	wg.Go(func() {
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		k := 0
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			due := int(time.Since(start).Milliseconds() * 10)
			for ; k < due; k++ {
				load.Publish(fmt.Sprintf("sensors/s%d", k%100), 1, false,
					fmt.Sprintf(`{"ts":%d,"value":%d}`, time.Now().UnixMilli(), k%40))
				bg.Add(1)
			}
		}
	})
	time.Sleep(time.Second) // the load settles

	probe := connect("latency-probe")
	defer probe.Disconnect(100)
	for i := range probes {
		// Probe i alternates firing (value 1000+i) and resolving (i%50/10).
		v := 1000 + float64(i)
		if i%2 == 1 {
			v = float64(i%50) / 10
		}
		mu.Lock()
		sent[fmt.Sprintf("a%g", v)] = time.Now()
		mu.Unlock()
		probe.Publish("sensors/probe", 1, false, fmt.Sprintf(`{"ts":%d,"value":%g}`, time.Now().UnixMilli(), v))
		time.Sleep(10 * time.Millisecond)
		mu.Lock()
		sent["r"+strconv.Itoa(i)] = time.Now()
		mu.Unlock()
		probe.Publish("latency/ref", 1, false, strconv.Itoa(i))
		time.Sleep(40 * time.Millisecond)
	}
	deadline := time.After(10 * time.Second)
collect:
	for len(alert) < probes || len(ref) < probes {
		select {
		case d := <-alertCh:
			alert = append(alert, d)
		case d := <-refCh:
			ref = append(ref, d)
		case <-deadline:
			break collect
		}
	}
	close(stop)
	wg.Wait()
	rate = float64(bg.Load()) / time.Since(start).Seconds()
	if len(ref) == 0 || len(alert) == 0 {
		b.Fatalf("%d alerts and %d reference messages received of %d probes", len(alert), len(ref), probes)
	}
	return alert, ref, rate
}
