package servicetest_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	influxdb2 "github.com/influxdata/influxdb-client-go/v2"
	"github.com/influxdata/influxdb-client-go/v2/api"
	influxhttp "github.com/influxdata/influxdb-client-go/v2/api/http"
	"github.com/influxdata/influxdb-client-go/v2/api/write"
	"go.uber.org/goleak"

	"github.com/edged-io/edged/internal/servicetest"
)

// TestMain checks that neither the harness nor the clients (once closed)
// leave goroutines behind.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// collector records the MQTT messages received on a subscription.
type collector struct {
	mu   sync.Mutex
	msgs []string
	got  chan struct{} // signalled (non-blocking) on every message
}

func newCollector() *collector { return &collector{got: make(chan struct{}, 1)} }

func (c *collector) handle(_ mqtt.Client, m mqtt.Message) {
	c.mu.Lock()
	c.msgs = append(c.msgs, string(m.Payload()))
	c.mu.Unlock()
	select {
	case c.got <- struct{}{}:
	default:
	}
}

func (c *collector) snapshot() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.msgs...)
}

// waitFor waits until at least n messages have been received.
func (c *collector) waitFor(t *testing.T, n int, timeout time.Duration) []string {
	t.Helper()
	return c.waitUntil(t, timeout, func(msgs []string) bool { return len(msgs) >= n })
}

// waitUntil waits until done returns true for the messages received so far.
func (c *collector) waitUntil(t *testing.T, timeout time.Duration, done func([]string) bool) []string {
	t.Helper()
	deadline := time.After(timeout)
	for {
		if msgs := c.snapshot(); done(msgs) {
			return msgs
		}
		select {
		case <-c.got:
		case <-deadline:
			msgs := c.snapshot()
			t.Fatalf("after %v, still waiting; received %d messages: %q", timeout, len(msgs), msgs)
		}
	}
}

// connect connects an MQTT client to the broker and disconnects it when the
// test ends.
func connect(t *testing.T, b *servicetest.Mosquitto, clientID string, clean bool, onConnect mqtt.OnConnectHandler) mqtt.Client {
	t.Helper()
	opts := mqtt.NewClientOptions().
		AddBroker(b.URL).
		SetClientID(clientID).
		SetCleanSession(clean).
		SetAutoReconnect(true).
		SetMaxReconnectInterval(time.Second).
		SetConnectTimeout(5 * time.Second).
		SetOrderMatters(true).
		SetOnConnectHandler(onConnect)
	c := mqtt.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connecting %s to %s: %v", clientID, b.URL, tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(250) })
	return c
}

func wait(t *testing.T, what string, tok mqtt.Token) {
	t.Helper()
	if !tok.WaitTimeout(10 * time.Second) {
		t.Fatalf("%s: timed out", what)
	}
	if err := tok.Error(); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func TestMosquitto(t *testing.T) {
	t.Parallel()
	b := servicetest.StartMosquitto(t, servicetest.MosquittoOptions{Persistence: true})
	if b.PID() == 0 {
		t.Fatal("PID() = 0 for a running broker")
	}
	if !strings.HasPrefix(b.URL, "tcp://127.0.0.1:") || b.Addr != strings.TrimPrefix(b.URL, "tcp://") {
		t.Fatalf("unexpected URL %q / Addr %q", b.URL, b.Addr)
	}

	const topic = "edged/test/readings"
	subID := "edged-servicetest-sub-" + fmt.Sprint(time.Now().UnixNano())

	// Count connections (initial + reconnections) per client.
	var subConnects, pubConnects atomic.Int32
	got := newCollector()
	sub := connect(t, b, subID, false, func(mqtt.Client) { subConnects.Add(1) })
	wait(t, "subscribe", sub.Subscribe(topic, 1, got.handle))

	pub := connect(t, b, subID+"-pub", true, func(mqtt.Client) { pubConnects.Add(1) })
	const n = 100
	var want []string
	toks := make([]mqtt.Token, 0, n)
	for i := range n {
		payload := fmt.Sprintf("reading %03d", i)
		want = append(want, payload)
		toks = append(toks, pub.Publish(topic, 1, false, payload))
	}
	for i, tok := range toks {
		wait(t, fmt.Sprintf("publish %d", i), tok)
	}
	msgs := got.waitFor(t, n, 10*time.Second)
	if strings.Join(msgs, "\n") != strings.Join(want, "\n") {
		t.Fatalf("received messages differ from published ones (order or content):\n got %q\nwant %q", msgs, want)
	}

	// Restart the broker (same port, same persistence directory). The
	// subscriber's persistent session, including its subscription, must
	// survive; both clients reconnect on their own.
	oldPID := b.PID()
	b.Restart(t)
	if pid := b.PID(); pid == 0 || pid == oldPID {
		t.Fatalf("PID() after Restart = %d (was %d)", pid, oldPID)
	}
	deadline := time.Now().Add(15 * time.Second)
	for subConnects.Load() < 2 || pubConnects.Load() < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("clients did not reconnect after broker restart (connections: sub %d, pub %d)", subConnects.Load(), pubConnects.Load())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !sub.IsConnectionOpen() || !pub.IsConnectionOpen() {
		t.Fatalf("connection not open after reconnect (sub %v, pub %v)", sub.IsConnectionOpen(), pub.IsConnectionOpen())
	}

	// Not resubscribing: the subscription comes from the persisted session.
	wait(t, "publish after restart", pub.Publish(topic, 1, false, "after restart"))
	msgs = got.waitUntil(t, 10*time.Second, func(msgs []string) bool {
		return slices.Contains(msgs[n:], "after restart")
	})
	// QoS 1 is at-least-once: messages whose PUBACK the broker had not
	// processed before it went down are redelivered (DUP) after the
	// restart. Anything else is an error.
	seen := map[string]bool{}
	for _, m := range want {
		seen[m] = true
	}
	dups := 0
	for _, m := range msgs[n:] {
		switch {
		case m == "after restart":
		case seen[m]:
			dups++
		default:
			t.Fatalf("unexpected message %q after restart", m)
		}
	}
	if c := strings.Count(strings.Join(msgs, "\n")+"\n", "after restart\n"); c != 1 {
		t.Fatalf("%q received %d times, want 1", "after restart", c)
	}
	t.Logf("after restart: %d QoS 1 redeliveries of already received messages", dups)

	// Disconnect the clients first: paho clients that lose their broker keep
	// reconnecting in the background (goleak would flag them).
	sub.Disconnect(250)
	pub.Disconnect(250)
	b.Stop()
	b.Stop() // idempotent
	b.Kill() // no-op once stopped
	if pid := b.PID(); pid != 0 {
		t.Fatalf("PID() after Stop = %d, want 0", pid)
	}
}

// TestMosquittoKill checks that a crash (SIGKILL) followed by Restart keeps
// the port and the subscriber's persisted session (autosaved every second).
func TestMosquittoKill(t *testing.T) {
	t.Parallel()
	b := servicetest.StartMosquitto(t, servicetest.MosquittoOptions{Persistence: true})
	const topic = "edged/test/kill"
	subID := "edged-servicetest-kill-" + fmt.Sprint(time.Now().UnixNano())
	got := newCollector()
	sub := connect(t, b, subID, false, nil)
	wait(t, "subscribe", sub.Subscribe(topic, 1, got.handle))
	// Wait for the first autosave (mosquitto saves when more than
	// autosave_interval whole seconds have passed, so after 1-2 s): only
	// then is the session on disk and able to survive a crash.
	db := filepath.Join(b.Dir, "mosquitto.db")
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(db); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not written by autosave", db)
		}
	}

	b.Kill()
	if b.PID() != 0 {
		t.Fatal("PID() != 0 after Kill")
	}
	b.Restart(t)
	pub := connect(t, b, subID+"-pub", true, nil)
	wait(t, "publish after crash", pub.Publish(topic, 1, false, "after crash"))
	if msgs := got.waitFor(t, 1, 15*time.Second); len(msgs) != 1 || msgs[0] != "after crash" {
		t.Fatalf("received %q, want [\"after crash\"]", msgs)
	}
}

// newInfluxClient returns an InfluxDB 2 client for s, closed when the test
// ends.
func newInfluxClient(t *testing.T, s *servicetest.Influxd) influxdb2.Client {
	t.Helper()
	c := influxdb2.NewClientWithOptions(s.URL, s.Token, influxdb2.DefaultOptions().
		SetHTTPRequestTimeout(10).
		SetMaxRetries(0))
	t.Cleanup(c.Close)
	return c
}

type sample struct {
	ts    time.Time
	value float64
	seq   int64
}

// queryPoints reads back every point of measurement m in [start, stop).
func queryPoints(t *testing.T, q api.QueryAPI, bucket, m string, start, stop time.Time) map[int64]sample {
	t.Helper()
	flux := fmt.Sprintf(`from(bucket: %q)
  |> range(start: %s, stop: %s)
  |> filter(fn: (r) => r._measurement == %q and r.sensor == "s1")`,
		bucket, start.Format(time.RFC3339Nano), stop.Format(time.RFC3339Nano), m)
	res, err := q.Query(context.Background(), flux)
	if err != nil {
		t.Fatalf("flux query: %v\n%s", err, flux)
	}
	defer res.Close()
	byTime := map[int64]sample{}
	for res.Next() {
		r := res.Record()
		ns := r.Time().UnixNano()
		s := byTime[ns]
		s.ts = r.Time()
		switch r.Field() {
		case "value":
			v, ok := r.Value().(float64)
			if !ok {
				t.Fatalf("value at %v is %T %v, want float64", r.Time(), r.Value(), r.Value())
			}
			s.value = v
		case "seq":
			v, ok := r.Value().(int64)
			if !ok {
				t.Fatalf("seq at %v is %T %v, want int64", r.Time(), r.Value(), r.Value())
			}
			s.seq = v
		default:
			t.Fatalf("unexpected field %q", r.Field())
		}
		byTime[ns] = s
	}
	if err := res.Err(); err != nil {
		t.Fatalf("flux query result: %v", err)
	}
	return byTime
}

func TestInfluxd(t *testing.T) {
	t.Parallel()
	s := servicetest.StartInfluxd(t)
	if s.PID() == 0 {
		t.Fatal("PID() = 0 for a running server")
	}
	if s.Bucket != "edged/autogen" || s.Database != "edged" || s.Token != "user:pass" || s.Org != "" {
		t.Fatalf("unexpected defaults: %+v", s)
	}
	c := newInfluxClient(t, s)
	ctx := context.Background()
	ok, err := c.Ping(ctx)
	if err != nil || !ok {
		t.Fatalf("Ping = %v, %v", ok, err)
	}

	// Nanosecond timestamps in the past (a fixed hour, away from "now"),
	// and values that do not round-trip through a sloppy float format.
	base := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	const n = 50
	var points []*write.Point
	want := map[int64]sample{}
	for i := range n {
		ts := base.Add(time.Duration(i)*time.Second + time.Duration(i*7919+1)) // odd nanoseconds
		v := float64(i)/3 + 0.1
		p := influxdb2.NewPoint("edged_smoke",
			map[string]string{"sensor": "s1"},
			map[string]any{"value": v, "seq": int64(i)},
			ts)
		points = append(points, p)
		want[ts.UnixNano()] = sample{ts: ts, value: v, seq: int64(i)}
	}
	w := c.WriteAPIBlocking(s.Org, s.Bucket)
	// Several requests, one of them carrying many points.
	if err := w.WritePoint(ctx, points[:1]...); err != nil {
		t.Fatalf("WritePoint: %v", err)
	}
	if err := w.WritePoint(ctx, points[1:]...); err != nil {
		t.Fatalf("WritePoint: %v", err)
	}

	check := func(what string) {
		t.Helper()
		got := queryPoints(t, c.QueryAPI(s.Org), s.Bucket, "edged_smoke", base.Add(-time.Hour), base.Add(time.Hour))
		if len(got) != len(want) {
			t.Fatalf("%s: read back %d points, want %d", what, len(got), len(want))
		}
		for ns, w := range want {
			g, ok := got[ns]
			if !ok {
				t.Fatalf("%s: point at %v (%d) missing", what, w.ts.Format(time.RFC3339Nano), ns)
			}
			if !g.ts.Equal(w.ts) || g.value != w.value || g.seq != w.seq {
				t.Fatalf("%s: point at %d = {%v %v %d}, want {%v %v %d}", what, ns,
					g.ts.Format(time.RFC3339Nano), g.value, g.seq, w.ts.Format(time.RFC3339Nano), w.value, w.seq)
			}
		}
	}
	check("after write")

	// A malformed line is a permanent error: HTTP 400 from the real server.
	err = w.WriteRecord(ctx, "edged_smoke,sensor=s1 value=")
	var herr *influxhttp.Error
	if !errors.As(err, &herr) {
		t.Fatalf("WriteRecord(malformed) = %v (%T), want *http.Error", err, err)
	}
	if herr.StatusCode != http.StatusBadRequest {
		t.Fatalf("WriteRecord(malformed) status = %d (%v), want 400", herr.StatusCode, herr)
	}
	t.Logf("malformed line: status %d, code %q, message %q", herr.StatusCode, herr.Code, herr.Message)

	// A crash does not lose acknowledged points, and Restart keeps port and
	// data.
	oldURL := s.URL
	s.Kill()
	if s.PID() != 0 {
		t.Fatal("PID() != 0 after Kill")
	}
	s.Restart(t)
	if s.URL != oldURL {
		t.Fatalf("URL changed across Restart: %s -> %s", oldURL, s.URL)
	}
	check("after kill and restart")

	s.Stop()
	s.Stop() // idempotent
	if s.PID() != 0 {
		t.Fatal("PID() != 0 after Stop")
	}
}

// TestInfluxdAuth: with Auth, the server takes Token and refuses any
// other with 401.
func TestInfluxdAuth(t *testing.T) {
	t.Parallel()
	s := servicetest.StartInfluxdWith(t, servicetest.InfluxdOptions{Auth: true})
	s.Exec(t, "SHOW DATABASES") // Exec authenticates
	for token, want := range map[string]int{s.Token: http.StatusNoContent, "user:wrong": http.StatusUnauthorized, "": http.StatusUnauthorized} {
		req, _ := http.NewRequest(http.MethodPost, s.URL+"/api/v2/write?bucket="+s.Bucket, strings.NewReader("m v=1 1"))
		if token != "" {
			req.Header.Set("Authorization", "Token "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("write with token %q: %s, want %d", token, resp.Status, want)
		}
	}
	http.DefaultClient.CloseIdleConnections()
}

// TestMosquittoUsersAndTLS: Users become a password_file; the TLS listener
// serves the certificate of MosquittoTLS and, with RequireCertificate,
// takes only clients with a certificate from CAFile.
func TestMosquittoUsersAndTLS(t *testing.T) {
	t.Parallel()
	ca := servicetest.NewCA(t, "test")
	server, client := ca.Server(t, "broker"), ca.Client(t, "cn-user")
	b := servicetest.StartMosquitto(t, servicetest.MosquittoOptions{DenyAnonymous: true, Users: map[string]string{"u": "p"},
		TLS: &servicetest.MosquittoTLS{CertFile: server.CertFile, KeyFile: server.KeyFile, CAFile: ca.CertFile,
			RequireCertificate: true, UseIdentityAsUsername: true}})
	try := func(url, user, pass string, tc *tls.Config) error {
		c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(url).SetClientID("probe").SetUsername(user).SetPassword(pass).
			SetTLSConfig(tc).SetConnectTimeout(5 * time.Second))
		tok := c.Connect()
		tok.WaitTimeout(10 * time.Second)
		if tok.Error() == nil {
			c.Disconnect(0)
		}
		return tok.Error()
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	pair, err := tls.LoadX509KeyPair(client.CertFile, client.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(b.TLSURL, "ssl://127.0.0.1:") || b.TLSPort == b.Port {
		t.Fatalf("TLS listener %q (port %d, plain %d)", b.TLSURL, b.TLSPort, b.Port)
	}
	for _, c := range []struct {
		name, url, user, pass string
		tls                   *tls.Config
		ok                    bool
	}{
		{"password", b.URL, "u", "p", nil, true},
		{"wrong password", b.URL, "u", "x", nil, false},
		{"anonymous", b.URL, "", "", nil, false},
		{"client certificate", b.TLSURL, "", "", &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{pair}}, true},
		{"no client certificate", b.TLSURL, "", "", &tls.Config{RootCAs: roots}, false},
	} {
		if err := try(c.url, c.user, c.pass, c.tls); (err == nil) != c.ok {
			t.Errorf("%s: %v", c.name, err)
		}
	}
}
