package reliability

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// badInputSubscriptions covers every payload format (configs/edged.yaml,
// sensors/payload).
const badInputSubscriptions = `- topic: bad/json/+
  format: json
  series: "j/{3}/{field}"
  fields: [{path: value}]
  time: {path: ts, format: unix_ms}
- topic: bad/short/#
  format: json
  series: "{4}/{field}"
  fields: [{path: value}]
- topic: bad/num/+
  format: number
  series: "n/{3}"
- topic: bad/line
  format: line
  series: "l/{tag:sensor}/{field}"
  time: {format: unix_ms}
- topic: zigbee2mqtt/#
  format: zigbee2mqtt
- topic: tele/+/SENSOR
  format: tasmota
- topic: shellies/#
  format: shelly
- topic: esp/#
  format: esphome`

// badMessage is one message of the stream and what edged must make of it.
type badMessage struct {
	topic, payload string
	// reason the message is (partly) rejected for; "" for a valid one.
	reason string
	// readings it yields: by identity (timed) or, for formats stamped
	// with the ingest time, by series and value.
	timed  []Identity
	values []float64
	series string // of values
}

// badInputRound returns the valid messages of round k (one per format) and
// the malformed one (cycling through every reason of every format).
func badInputRound(k int, t0 int64) (valid []badMessage, bad badMessage) {
	ts := t0 + int64(k)*100
	v := float64(k%400) / 4
	epoch := t0/1000 + int64(k)
	valid = []badMessage{
		{topic: "bad/json/s0", payload: fmt.Sprintf(`{"ts":%d,"value":%g}`, ts, v), timed: []Identity{{"j/s0/value", ts}}, values: []float64{v}},
		{topic: "bad/num/s0", payload: fmt.Sprint(v), series: "n/s0", values: []float64{v}},
		{topic: "bad/line", payload: fmt.Sprintf("m,sensor=s0 value=%g %d", v, ts), timed: []Identity{{"l/s0/value", ts}}, values: []float64{v}},
		{topic: "zigbee2mqtt/zb0", payload: fmt.Sprintf(`{"temperature":%g,"linkquality":"n/a","last_seen":%d}`, v, ts),
			timed: []Identity{{"zb0/temperature", ts}}, values: []float64{v}},
		{topic: "tele/tas0/SENSOR", payload: fmt.Sprintf(`{"Time":"x","Epoch":%d,"BME280":{"Temperature":%g}}`, epoch, v),
			timed: []Identity{{"tas0/BME280/Temperature", epoch * 1000}}, values: []float64{v}},
		{topic: "shellies/sh0/sensor/temperature", payload: fmt.Sprint(v), series: "sh0/temperature", values: []float64{v}},
		{topic: "esp/sensor/e0/state", payload: fmt.Sprint(v), series: "esp/e0", values: []float64{v}},
	}
	malformed := []badMessage{
		{topic: "bad/json/s1", payload: fmt.Sprintf(`{"ts":%d,"value":`, ts), reason: "invalid_json"},
		{topic: "bad/json/s1", payload: fmt.Sprintf(`{"ts":%d,"value":"abc"}`, ts), reason: "not_numeric"},
		{topic: "bad/json/s1", payload: fmt.Sprintf(`{"ts":%d}`, ts), reason: "missing_field"},
		{topic: "bad/json/s1", payload: "", reason: "empty"},
		{topic: "bad/json/s1", payload: strings.Repeat(" ", 300<<10) + `{"value":1}`, reason: "too_large"},
		// Partly good: the value is kept, stamped with the ingest time.
		{topic: "bad/json/bt", payload: fmt.Sprintf(`{"ts":"yesterday","value":%g}`, v), reason: "bad_timestamp", series: "j/bt/value", values: []float64{v}},
		{topic: "bad/short/x", payload: `{"value":1}`, reason: "bad_topic"},
		{topic: "bad/num/s1", payload: "abc", reason: "not_a_number"},
		{topic: "bad/num/s1", payload: "1e999", reason: "non_finite"},
		{topic: "bad/num/s1", payload: "NaN", reason: "non_finite"},
		{topic: "bad/num/s1", payload: "  ", reason: "empty"},
		{topic: "bad/line", payload: fmt.Sprintf("m,sensor=s1 value= %d", ts), reason: "line_syntax"},
		// Partly good: the first line is kept.
		{topic: "bad/line", payload: fmt.Sprintf("m,sensor=s2 value=%g %d\nm,sensor=s2 value= %d", v, ts, ts+1), reason: "line_syntax",
			timed: []Identity{{"l/s2/value", ts}}, values: []float64{v}},
		{topic: "bad/line", payload: fmt.Sprintf("m value=1 %d", ts), reason: "missing_field"},
		{topic: "bad/line", payload: fmt.Sprintf(`m,sensor=s1 s="x" %d`, ts), reason: "no_values"},
		{topic: "bad/line", payload: fmt.Sprintf("m,sensor=a\x01b value=1 %d", ts), reason: "bad_name"},
		{topic: "zigbee2mqtt/zb1", payload: `{"temperature":`, reason: "invalid_json"},
		{topic: "zigbee2mqtt/zb1", payload: `[1,2]`, reason: "invalid_json"},
		{topic: "tele/tas1/SENSOR", payload: `{"Time":`, reason: "invalid_json"},
		{topic: "shellies/sh1/sensor/temperature", payload: "hot", reason: "not_a_number"},
		{topic: "shellies/sh1/sensor/temperature", payload: "", reason: "empty"},
		{topic: "esp/sensor/e1/state", payload: "nan", reason: "non_finite"},
		{topic: "esp/sensor/e1/state", payload: "warm", reason: "not_a_number"},
	}
	b := malformed[k%len(malformed)]
	if b.reason == "too_large" && k/len(malformed) >= 40 {
		// 300 KiB each: forty are enough, thousands only load the broker.
		b = malformed[0]
	}
	return valid, b
}

// TestBadInputAtVolume publishes, through mosquitto, a stream that mixes
// valid messages of every payload format (json, number, line, zigbee2mqtt,
// tasmota, shelly, esphome) with malformed ones covering every reject
// reason (one in eight messages), at about 1,600 messages/s.
//
// Pass criteria:
//   - all valid data arrives: every reading of a valid message (and the
//     good part of a partly bad one) is in the WAL and in InfluxDB with its
//     value (by identity for timestamped formats; by series and value for
//     formats stamped with the ingest time); nothing else is;
//   - every malformed message is counted: edged_ingest_rejected_total by
//     reason equals what was sent, and edged_mqtt_rejected_total the total;
//   - every malformed message is dead-lettered: the dead-letter files hold
//     the newest ones, in order, up to their documented bound (two files of
//     1 MiB), and /api/v1/deadletters the newest 100, newest first;
//   - ingest never stops: every message is acknowledged.
func TestBadInputAtVolume(t *testing.T) {
	t.Parallel()
	rounds := tier3(300, 1000, 20000)
	fig := newFigures(t)
	e := newEnv(t, envOptions{device: "rel-bad", ship: true})
	e.cfg.Subscriptions = badInputSubscriptions
	d := e.start()

	pub := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(e.broker.URL).SetClientID("rel-bad-pub"))
	if tok := pub.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	defer pub.Disconnect(100)
	// In the past by more than the rounds span: the Tasmota readings
	// advance a second a round (its Epoch has whole seconds), and any
	// reading more than aggregate's MaxFuture ahead would be untrusted.
	t0 := time.Now().Add(-max(time.Hour, time.Duration(rounds)*time.Second+10*time.Minute)).UnixMilli()
	t0 -= t0 % 10_000
	var sent []badMessage
	var bad []badMessage
	var toks []mqtt.Token
	for k := range rounds {
		valid, b := badInputRound(k, t0)
		for _, m := range append(valid, b) {
			toks = append(toks, pub.Publish(m.topic, 1, false, m.payload))
			sent = append(sent, m)
		}
		bad = append(bad, b)
		if k%25 == 24 {
			time.Sleep(100 * time.Millisecond) // ~1,600 messages/s
		}
	}
	for _, tok := range toks {
		if !tok.WaitTimeout(time.Minute) || tok.Error() != nil {
			t.Fatalf("publish: %v", tok.Error())
		}
	}
	var m0 map[string]float64
	err := waitFor(3*time.Minute, func() bool {
		var err error
		m0, err = d.Metrics()
		return err == nil && m0["edged_mqtt_acked_total"] >= float64(len(sent)) || d.Exited()
	})
	if d.Exited() {
		logs, _ := os.ReadFile(d.LogPath)
		fig.add("edged exited during the stream (%v): %s", d.ExitErr(), errorLines(string(logs)))
		if strings.Contains(string(logs), "can't insert rows into disk partition") && !enforced(t, "views-disk-partition") {
			return
		}
		t.Fatalf("edged exited during the stream: %v", d.ExitErr())
	}
	if err != nil {
		t.Fatalf("edged acknowledged %v of %d messages (received %v, rejected %v)", m0["edged_mqtt_acked_total"], len(sent),
			m0["edged_mqtt_messages_total"], m0["edged_mqtt_rejected_total"])
	}

	// Counted, by reason.
	wantReasons := map[string]float64{}
	for _, b := range bad {
		wantReasons[b.reason]++
	}
	m, err := d.Metrics()
	if err != nil {
		t.Fatal(err)
	}
	var gotTotal float64
	for k, v := range m {
		if strings.HasPrefix(k, "edged_ingest_rejected_total{") {
			reason := strings.TrimSuffix(strings.TrimPrefix(k, `edged_ingest_rejected_total{reason="`), `"}`)
			if wantReasons[reason] != v {
				t.Errorf("edged_ingest_rejected_total{reason=%q} = %v, want %v", reason, v, wantReasons[reason])
			}
			gotTotal += v
		}
	}
	for r, n := range wantReasons {
		if _, ok := m[fmt.Sprintf(`edged_ingest_rejected_total{reason=%q}`, r)]; !ok {
			t.Errorf("no edged_ingest_rejected_total for reason %q (%v sent)", r, n)
		}
	}
	if gotTotal != float64(len(bad)) || m["edged_mqtt_rejected_total"] != float64(len(bad)) {
		t.Errorf("rejected: %v by reason, %v in all, want %d", gotTotal, m["edged_mqtt_rejected_total"], len(bad))
	}

	// Dead-lettered: the API's newest 100, newest first.
	dl, err := d.DeadLetters()
	if err != nil {
		t.Fatal(err)
	}
	if len(dl) != min(100, len(bad)) {
		t.Errorf("/api/v1/deadletters: %d entries", len(dl))
	}
	for i, got := range dl {
		w := bad[len(bad)-1-i]
		if got.Topic != w.topic || got.Reason != w.reason || !strings.HasPrefix(w.payload, got.Payload) || got.Size != len(w.payload) {
			t.Errorf("dead letter %d: %s %s %.40q (size %d), want %s %s %.40q", i, got.Topic, got.Reason, got.Payload, got.Size, w.topic, w.reason, w.payload)
			break
		}
	}
	inFiles := deadLetterFiles(t, filepath.Join(e.cfg.DataDir, "deadletter"))
	if len(inFiles) == 0 || len(inFiles) > len(bad) {
		t.Fatalf("dead-letter files hold %d entries for %d malformed messages", len(inFiles), len(bad))
	}
	tailBad := bad[len(bad)-len(inFiles):]
	for i, got := range inFiles {
		if got.Topic != tailBad[i].topic || got.Reason != tailBad[i].reason || !strings.HasPrefix(tailBad[i].payload, got.Payload) {
			t.Errorf("dead-letter file entry %d of %d is %s %s, want %s %s: the files are not the newest malformed messages in order",
				i, len(inFiles), got.Topic, got.Reason, tailBad[i].topic, tailBad[i].reason)
			break
		}
	}
	rotated := fileExists(filepath.Join(e.cfg.DataDir, "deadletter", "deadletter.jsonl.1"))
	if !rotated && len(inFiles) != len(bad) {
		t.Errorf("dead-letter file holds %d of %d malformed messages without having rotated", len(inFiles), len(bad))
	}

	WaitShipped(t, d, time.Minute)
	d.Stop(t)

	// All valid data arrives, in the WAL and in InfluxDB.
	wantTimed := map[Identity]Point{}
	wantValues := map[string][]float64{}
	for _, m := range sent {
		for i, id := range m.timed {
			wantTimed[id] = Point{Value: m.values[i], Copies: 1}
		}
		if m.timed == nil && m.values != nil {
			wantValues[m.series] = append(wantValues[m.series], m.values...)
		}
	}
	walGot, err := WALReadings(e.cfg.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	influxGot, err := e.influxQL().Readings("edged_reading", e.cfg.Device)
	if err != nil {
		t.Fatal(err)
	}
	for name, got := range map[string]map[Identity]Point{"WAL": walGot, "InfluxDB": influxGot} {
		timed := map[Identity]Point{}
		values := map[string][]float64{}
		for id, p := range got {
			if _, ok := wantValues[id.Series]; ok {
				values[id.Series] = append(values[id.Series], p.Values...)
			} else {
				timed[id] = p
			}
		}
		if diff := Compare(wantTimed, timed); !diff.OK() || diff.Duplicated != 0 {
			t.Errorf("%s, timestamped readings: %v", name, diff)
		}
		for s, want := range wantValues {
			g := values[s]
			slices.Sort(g)
			w := slices.Clone(want)
			slices.Sort(w)
			if !slices.Equal(g, w) {
				t.Errorf("%s, %s (ingest-stamped): %d readings, want %d", name, s, len(g), len(w))
			}
		}
	}

	fig.add("%d messages (%d rounds of 7 valid, one per format, + 1 malformed cycling through 23 kinds), %d malformed", len(sent), rounds, len(bad))
	var reasons []string
	for r, n := range wantReasons {
		reasons = append(reasons, fmt.Sprintf("%s %v", r, n))
	}
	slices.Sort(reasons)
	fig.add("edged_ingest_rejected_total matches by reason: %s", strings.Join(reasons, ", "))
	fig.add("dead letters: files hold the newest %d (rotated: %v), API the newest %d", len(inFiles), rotated, len(dl))
	ingestStamped := 0
	for _, v := range wantValues {
		ingestStamped += len(v)
	}
	fig.add("valid readings: %d timestamped + %d ingest-stamped (partly bad messages' good parts included), all in the WAL and InfluxDB",
		len(wantTimed), ingestStamped)
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// deadLetterFiles reads deadletter.jsonl.1 then deadletter.jsonl.
func deadLetterFiles(t *testing.T, dir string) []DeadLetter {
	t.Helper()
	var out []DeadLetter
	for _, name := range []string{"deadletter.jsonl.1", "deadletter.jsonl"} {
		f, err := os.Open(filepath.Join(dir, name))
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 4<<20)
		for sc.Scan() {
			var e DeadLetter
			if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			out = append(out, e)
		}
		f.Close()
	}
	return out
}
