package notify_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"go.uber.org/goleak"

	"github.com/edged-io/edged/alerts/notify"
	"github.com/edged-io/edged/internal/mqttconn"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m) // Run, its MQTT clients and the test clients have all stopped
}

// waitTimeout bounds every wait for the broker; a healthy run needs well
// under a second.
const waitTimeout = 10 * time.Second

// options returns publisher options for broker url; the client id is the
// test's, so parallel tests do not take over each other's sessions.
func options(t *testing.T, url string) notify.Options {
	return notify.Options{
		Conn: mqttconn.Options{Broker: url, ClientID: "edged-alerts-" + strings.NewReplacer("/", "-", " ", "_").Replace(t.Name()),
			MaxReconnectInterval: 500 * time.Millisecond},
		Device:   "pi",
		StateDir: t.TempDir(),
		Logger:   slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(b), "\n"))
	return len(b), nil
}

// run starts p.Run; the returned function (also a cleanup) stops it and
// checks its result.
func run(t *testing.T, p *notify.Publisher) (stop func()) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- p.Run(context.Background()) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			p.Close()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// start creates a publisher with o and runs it.
func start(t *testing.T, o notify.Options) (*notify.Publisher, func()) {
	t.Helper()
	p, err := notify.New(o)
	if err != nil {
		t.Fatal(err)
	}
	return p, run(t, p)
}

// ev is an alert event; its value is its LSN so that messages identify it.
func ev(lsn uint64, seq uint32, rule, series, state string) notify.Event {
	return notify.Event{
		Rule: rule, Series: series, State: state, Value: float64(lsn), Threshold: 30, Severity: "warning",
		Labels: map[string]string{"zone": "north"}, Started: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC).UnixNano(),
		ID: "cycle-" + rule, LSN: lsn, Seq: seq,
	}
}

// msg is a received message.
type msg struct {
	Topic    string
	Payload  string
	Retained bool
}

// field returns a top-level field of a JSON payload.
func (m msg) field(name string) any {
	var v map[string]any
	if err := json.Unmarshal([]byte(m.Payload), &v); err != nil {
		return fmt.Sprintf("bad JSON %q: %v", m.Payload, err)
	}
	return v[name]
}

// collector is a subscriber that records what it receives.
type collector struct {
	mu   sync.Mutex
	msgs []msg
}

// subscribe connects a subscriber (a clean session) to filters.
func subscribe(t *testing.T, url string, filters ...string) *collector {
	t.Helper()
	return subscriber(t, url, fmt.Sprintf("sub-%d", time.Now().UnixNano()), true, filters...)
}

// subscriber connects a client; with a persistent session (clean false)
// it reconnects by itself and its subscription survives broker restarts.
func subscriber(t *testing.T, url, id string, clean bool, filters ...string) *collector {
	t.Helper()
	c := &collector{}
	o := mqtt.NewClientOptions().AddBroker(url).SetClientID(id).SetCleanSession(clean).
		SetAutoReconnect(!clean).SetConnectRetry(!clean).SetMaxReconnectInterval(500 * time.Millisecond)
	cl := mqtt.NewClient(o)
	wait(t, "subscriber connect", cl.Connect())
	t.Cleanup(func() { cl.Disconnect(100) })
	subs := map[string]byte{}
	for _, f := range filters {
		subs[f] = 1
	}
	wait(t, "subscribe", cl.SubscribeMultiple(subs, func(_ mqtt.Client, m mqtt.Message) {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.msgs = append(c.msgs, msg{m.Topic(), string(m.Payload()), m.Retained()})
	}))
	return c
}

// publishRaw publishes one message as another client would.
func publishRaw(t *testing.T, url, topic, payload string, retained bool) {
	t.Helper()
	cl := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(url).SetClientID(fmt.Sprintf("raw-%d", time.Now().UnixNano())))
	wait(t, "connect", cl.Connect())
	defer cl.Disconnect(100)
	wait(t, "publish", cl.Publish(topic, 1, retained, payload))
}

func wait(t *testing.T, what string, tok mqtt.Token) {
	t.Helper()
	if !tok.WaitTimeout(waitTimeout) || tok.Error() != nil {
		t.Fatalf("%s: %v", what, tok.Error())
	}
}

// received returns the messages whose topic starts with prefix.
func (c *collector) received(prefix string) []msg {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []msg
	for _, m := range c.msgs {
		if strings.HasPrefix(m.Topic, prefix) {
			out = append(out, m)
		}
	}
	return out
}

// waitFor polls the messages under prefix until ok accepts them.
func (c *collector) waitFor(t *testing.T, prefix, what string, ok func([]msg) bool) []msg {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		got := c.received(prefix)
		if ok(got) {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; received under %q:\n%s", what, prefix, dump(got))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitN waits for at least n messages under prefix.
func (c *collector) waitN(t *testing.T, prefix string, n int) []msg {
	t.Helper()
	return c.waitFor(t, prefix, fmt.Sprintf("%d messages", n), func(m []msg) bool { return len(m) >= n })
}

func dump(ms []msg) string {
	var b strings.Builder
	for _, m := range ms {
		fmt.Fprintf(&b, "  %s retained=%v %s\n", m.Topic, m.Retained, m.Payload)
	}
	return b.String()
}

// waitUntil polls cond.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// proxy forwards TCP connections to a broker, so a test can cut them
// abruptly, as a network failure or a crash would, without DISCONNECT.
type proxy struct {
	URL    string
	ln     net.Listener
	target string

	mu        sync.Mutex
	conns     []net.Conn
	wg        sync.WaitGroup
	blackhole atomic.Bool // discard what the client sends
}

func startProxy(t *testing.T, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{URL: "tcp://" + ln.Addr().String(), ln: ln, target: target}
	p.wg.Go(p.accept)
	t.Cleanup(func() {
		ln.Close()
		p.cut()
		p.wg.Wait()
	})
	return p
}

func (p *proxy) accept() {
	for {
		down, err := p.ln.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			down.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, down, up)
		p.mu.Unlock()
		p.wg.Go(func() { p.copy(up, down, &p.blackhole) })
		p.wg.Go(func() { p.copy(down, up, new(atomic.Bool)) })
	}
}

// copy forwards src to dst, or drops what it reads while drop is set.
func (p *proxy) copy(dst, src net.Conn, drop *atomic.Bool) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !drop.Load() {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// cut resets every connection through the proxy.
func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetLinger(0) // RST, not FIN
		}
		c.Close()
	}
	p.conns = nil
}
