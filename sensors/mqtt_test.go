package sensors_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/edged-io/edged"
	"github.com/edged-io/edged/internal/mqttconn"
	"github.com/edged-io/edged/internal/servicetest"
	"github.com/edged-io/edged/sensors"
	"github.com/edged-io/edged/wal"
)

// brokerLimits lifts mosquitto's per-client queue limits. With the
// defaults (20 in flight, 1000 queued) the broker drops QoS 1 messages for a
// subscriber that acknowledges only after fsync while a fast publisher
// floods it: the loss happens in the broker, before edged sees anything.
const brokerLimits = "max_inflight_messages 1000\nmax_queued_messages 1000000\n"

// numberDecoder decodes a plain number; the payload formats proper live in
// sensors/payload.
type numberDecoder struct{}

func (numberDecoder) Decode(dst []edged.Reading, topic string, p []byte, ingest int64) ([]edged.Reading, error) {
	v, err := strconv.ParseFloat(strings.TrimSpace(string(p)), 64)
	if err != nil {
		return dst, fmt.Errorf("not a number: %q", p)
	}
	return append(dst, edged.Reading{Device: "pi", Series: topic, Value: v, Time: ingest, Ingest: ingest, Flags: edged.TimeFromIngest}), nil
}

type rejects struct {
	mu   sync.Mutex
	list []string
}

func (r *rejects) Reject(topic string, payload []byte, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.list = append(r.list, topic+" "+string(payload))
}

func publish(t *testing.T, url string, msgs map[string][]string) {
	t.Helper()
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(url).SetClientID("test-publisher"))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publisher connect: %v", tok.Error())
	}
	defer c.Disconnect(100)
	var toks []mqtt.Token
	for topic, payloads := range msgs {
		for _, p := range payloads {
			toks = append(toks, c.Publish(topic, 1, false, p))
		}
	}
	for _, tok := range toks {
		if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("publish: %v", tok.Error())
		}
	}
}

type runningSource struct {
	src    *sensors.MQTT
	cancel context.CancelFunc
	done   chan error
}

func startSource(t *testing.T, url string, sink sensors.Sink, rej sensors.Rejecter) *runningSource {
	t.Helper()
	src, err := sensors.NewMQTT(sensors.MQTTOptions{
		Conn:          mqttconn.Options{Broker: url, ClientID: "edged-test"},
		Subscriptions: []sensors.MQTTSubscription{{Filter: "sensors/#", QoS: 1, Decoder: numberDecoder{}}},
		Rejects:       rej, DrainTimeout: 200 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	rs := &runningSource{src: src, cancel: cancel, done: make(chan error, 1)}
	go func() { rs.done <- src.Run(ctx, sink) }()
	select {
	case <-src.Subscribed():
	case <-time.After(20 * time.Second):
		t.Fatal("timed out waiting for the broker to acknowledge the subscription")
	}
	return rs
}

func (rs *runningSource) stop(t *testing.T) {
	t.Helper()
	rs.cancel()
	select {
	case err := <-rs.done:
		if err != nil {
			t.Fatalf("source Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("source did not stop")
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func startLog(t *testing.T) *wal.Log {
	l, err := wal.Open(wal.Options{Dir: t.TempDir(), Sync: wal.SyncInterval})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { l.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done; l.Close() })
	return l
}

// readings returns every reading in the log, in LSN order.
func readings(t *testing.T, l *wal.Log) []edged.Reading {
	t.Helper()
	r := l.NewReader(1)
	defer r.Close()
	var out []edged.Reading
	for {
		rec, err := r.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		if out, err = edged.DecodeRecord(out, rec.Data, rec.LSN); err != nil {
			t.Fatal(err)
		}
	}
}

// TestMQTTIngestsEveryMessageInOrder: every QoS 1 message the broker
// delivers is in the log once, in per-topic publish order, and acknowledged;
// a malformed one is rejected, acknowledged and does not stop ingest.
func TestMQTTIngestsEveryMessageInOrder(t *testing.T) {
	broker := servicetest.StartMosquitto(t, servicetest.MosquittoOptions{ExtraConfig: brokerLimits})
	l := startLog(t)
	rej := &rejects{}
	rs := startSource(t, broker.URL, sensors.LogSink{Log: l}, rej)
	msgs := map[string][]string{}
	const topics, per = 8, 250
	for i := range topics * per {
		topic := fmt.Sprintf("sensors/s%d", i%topics)
		msgs[topic] = append(msgs[topic], strconv.Itoa(i))
	}
	msgs["sensors/bad"] = []string{"twenty-one"}
	publish(t, broker.URL, msgs)
	waitFor(t, "all messages acknowledged", func() bool { return rs.src.Stats().Acked == topics*per+1 })
	rs.stop(t)

	got := readings(t, l)
	if len(got) != topics*per {
		t.Fatalf("log holds %d readings, want %d", len(got), topics*per)
	}
	last := map[string]float64{}
	for _, r := range got {
		if prev, ok := last[r.Series]; ok && r.Value <= prev {
			t.Fatalf("%s: %v after %v: out of publish order or duplicated", r.Series, r.Value, prev)
		}
		last[r.Series] = r.Value
	}
	if st := rs.src.Stats(); st.Rejected != 1 || len(rej.list) != 1 || rej.list[0] != "sensors/bad twenty-one" {
		t.Fatalf("rejects: %+v %v", st, rej.list)
	}
}

// blockedSink appends to a log but never reports anything durable.
type blockedSink struct {
	sensors.LogSink
}

func (blockedSink) WaitDurable(ctx context.Context, _ uint64) error {
	<-ctx.Done()
	return ctx.Err()
}

// TestMQTTAcknowledgesOnlyDurableMessages: messages whose records never
// became durable are not acknowledged; the broker redelivers every one of
// them to the next run of the source (same client id, persistent session).
func TestMQTTAcknowledgesOnlyDurableMessages(t *testing.T) {
	broker := servicetest.StartMosquitto(t, servicetest.MosquittoOptions{ExtraConfig: brokerLimits})
	first := startLog(t)
	rs := startSource(t, broker.URL, blockedSink{sensors.LogSink{Log: first}}, nil)
	const n = 50
	var payloads []string
	for i := range n {
		payloads = append(payloads, strconv.Itoa(i))
	}
	publish(t, broker.URL, map[string][]string{"sensors/x": payloads})
	waitFor(t, "first run appended everything", func() bool { return rs.src.Stats().Readings == n })
	rs.stop(t)
	if acked := rs.src.Stats().Acked; acked != 0 {
		t.Fatalf("acknowledged %d messages that were never durable", acked)
	}

	second := startLog(t)
	rs2 := startSource(t, broker.URL, sensors.LogSink{Log: second}, nil)
	waitFor(t, "redelivery", func() bool { return rs2.src.Stats().Acked >= n })
	rs2.stop(t)
	seen := map[float64]bool{}
	for _, r := range readings(t, second) {
		seen[r.Value] = true
	}
	for i := range n {
		if !seen[float64(i)] {
			t.Fatalf("message %d was not redelivered after the unacknowledged run", i)
		}
	}
}

// TestMQTTSubscribedWaitsForTheSubAck: Subscribed stays open while the
// broker is away and closes once it has acknowledged the subscription;
// a message published from then on is ingested (a fresh session: one
// published before the SUBACK would not be addressed to edged).
func TestMQTTSubscribedWaitsForTheSubAck(t *testing.T) {
	broker := servicetest.StartMosquitto(t, servicetest.MosquittoOptions{})
	broker.Stop()
	l := startLog(t)
	src, err := sensors.NewMQTT(sensors.MQTTOptions{
		Conn:          mqttconn.Options{Broker: broker.URL, ClientID: "edged-test-suback"},
		Subscriptions: []sensors.MQTTSubscription{{Filter: "sensors/#", QoS: 1, Decoder: numberDecoder{}}},
		DrainTimeout:  200 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	rs := &runningSource{src: src, cancel: cancel, done: make(chan error, 1)}
	go func() { rs.done <- src.Run(ctx, sensors.LogSink{Log: l}) }()
	defer rs.stop(t)
	select {
	case <-src.Subscribed():
		t.Fatal("Subscribed closed while the broker is down")
	case <-time.After(1500 * time.Millisecond):
	}
	broker.Restart(t)
	select {
	case <-src.Subscribed():
	case <-time.After(20 * time.Second):
		t.Fatal("Subscribed not closed after the broker came back")
	}
	publish(t, broker.URL, map[string][]string{"sensors/now": {"42"}})
	waitFor(t, "the message published after the SUBACK", func() bool { return src.Stats().Acked == 1 })
}

func TestMatchTopic(t *testing.T) {
	cases := []struct {
		filter, topic string
		want          bool
	}{
		{"a/b", "a/b", true}, {"a/+", "a/b", true}, {"a/+", "a/b/c", false}, {"a/#", "a", true},
		{"a/#", "a/b/c", true}, {"#", "a/b", true}, {"#", "$SYS/x", false}, {"$SYS/#", "$SYS/x", true},
		{"+/b", "a/b", true}, {"a/b", "a/c", false}, {"a/b/c", "a/b", false}, {"+", "", true},
		{"a/+/#", "a/x", true}, {"a/+/#", "a", false}, {"a/+", "a", false}, {"a/b", "a/b/", false},
		{"a/b/", "a/b/", true}, {"a/+", "a/", true}, {"/+", "/x", true}, {"+/+", "/", true}, {"#", "", true},
		{"a/#", "ab", false}, {"a", "a/b", false},
	}
	for _, c := range cases {
		if got := sensors.MatchTopic(c.filter, c.topic); got != c.want {
			t.Errorf("MatchTopic(%q, %q) = %v", c.filter, c.topic, got)
		}
	}
	for _, bad := range []string{"", "a/#/b", "a+/b", "a/b#"} {
		_, err := sensors.NewMQTT(sensors.MQTTOptions{Conn: mqttconn.Options{Broker: "tcp://127.0.0.1:1", ClientID: "x"},
			Subscriptions: []sensors.MQTTSubscription{{Filter: bad, QoS: 1, Decoder: numberDecoder{}}}})
		if err == nil {
			t.Errorf("filter %q accepted", bad)
		}
	}
}
