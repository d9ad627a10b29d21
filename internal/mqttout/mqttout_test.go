package mqttout_test

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/edged-io/edged/internal/mqttconn"
	"github.com/edged-io/edged/internal/mqttout"
	"github.com/edged-io/edged/internal/servicetest"
)

// TestPublishesOverTLSWithClientCertificate: windows reach a broker whose
// TLS listener requires a client certificate; with a CA that did not sign
// the broker's certificate nothing is sent, and the log says why.
func TestPublishesOverTLSWithClientCertificate(t *testing.T) {
	ca, other := servicetest.NewCA(t, "edged"), servicetest.NewCA(t, "untrusted")
	server, client := ca.Server(t, "broker"), ca.Client(t, "edged-pi")
	b := servicetest.StartMosquitto(t, servicetest.MosquittoOptions{TLS: &servicetest.MosquittoTLS{
		CertFile: server.CertFile, KeyFile: server.KeyFile, CAFile: ca.CertFile, RequireCertificate: true, UseIdentityAsUsername: true}})
	got := subscribe(t, b.URL, "edged/#")

	for _, tc := range []struct {
		name string
		ca   *servicetest.CA
		ok   bool
	}{{"untrusted CA", other, false}, {"right CA", ca, true}} {
		t.Run(tc.name, func(t *testing.T) {
			var logs servicetest.LogBuffer
			p, err := mqttout.New(mqttout.Options{
				Conn:   mqttconn.Options{Broker: b.TLSURL, ClientID: "edged-out", TLS: tc.ca.ClientTLS(t, &client)},
				Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
			})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- p.Run(ctx) }()
			defer func() {
				cancel()
				if err := <-done; err != nil {
					t.Errorf("Run: %v", err)
				}
			}()
			p.Publish(mqttout.Message{Topic: "edged/pi/agg/10s/" + tc.name, Payload: []byte(`{"count":1}`), QoS: 1})
			if tc.ok {
				waitUntil(t, "the window at the subscriber", func() bool { return got.count("edged/pi/agg/10s/"+tc.name) == 1 })
				if st := p.Stats(); st.Sent != 1 || !st.Connected {
					t.Errorf("stats %+v", st)
				}
				return
			}
			waitUntil(t, "the refusal logged", func() bool { return strings.Contains(logs.String(), "level=ERROR") })
			time.Sleep(300 * time.Millisecond)
			if st := p.Stats(); st.Sent != 0 || st.Connected || got.count("edged/") != 0 {
				t.Errorf("stats %+v, %d received: sent over a refused connection", st, got.count("edged/"))
			}
			if out := logs.String(); !strings.Contains(out, "mqtt.tls.ca_file") {
				t.Errorf("no hint in the log:\n%s", out)
			}
		})
	}
}

// collector counts what a plain subscriber receives.
type collector struct {
	mu     sync.Mutex
	topics []string
}

func (c *collector) count(prefix string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, t := range c.topics {
		if strings.HasPrefix(t, prefix) {
			n++
		}
	}
	return n
}

func subscribe(t *testing.T, url, filter string) *collector {
	t.Helper()
	c := &collector{}
	cl := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(url).SetClientID("test-sub"))
	if tok := cl.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscriber: %v", tok.Error())
	}
	t.Cleanup(func() { cl.Disconnect(100) })
	tok := cl.Subscribe(filter, 1, func(_ mqtt.Client, m mqtt.Message) {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.topics = append(c.topics, m.Topic())
	})
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	return c
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestQueuedBeforeTheFirstConnection: a QoS 1 message published while the
// broker is not yet reachable is sent once it is, and the output keeps
// going (before the fix it waited for ever on the lost message's token).
func TestQueuedBeforeTheFirstConnection(t *testing.T) {
	b := servicetest.StartMosquitto(t, servicetest.MosquittoOptions{})
	b.Stop()
	p, err := mqttout.New(mqttout.Options{Conn: mqttconn.Options{Broker: b.URL, ClientID: "edged-out-early"}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	defer func() { cancel(); <-done }()
	p.Publish(mqttout.Message{Topic: "edged/pi/agg/10s/a", Payload: []byte("1"), QoS: 1})
	time.Sleep(300 * time.Millisecond)
	b.Restart(t)
	got := subscribe(t, b.URL, "edged/#")
	waitUntil(t, "connected", func() bool { return p.Stats().Connected })
	p.Publish(mqttout.Message{Topic: "edged/pi/agg/10s/b", Payload: []byte("2"), QoS: 1})
	waitUntil(t, "the message published after the connection", func() bool { return got.count("edged/pi/agg/10s/b") == 1 })
	if st := p.Stats(); st.Sent != 2 {
		t.Errorf("stats %+v: want both sent", st)
	}
}
