package sensors_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/edged-io/edged/internal/mqttconn"
	"github.com/edged-io/edged/internal/servicetest"
	"github.com/edged-io/edged/sensors"
)

// TestMQTTOverTLSWithClientCertificate: through a TLS listener that
// requires a client certificate, the source ingests with the right CA and
// certificate. With a CA that did not sign the broker's certificate, or
// without a client certificate, it never connects, says why in the log,
// and takes in nothing: the messages published meanwhile wait in the
// persistent session and arrive, all of them, once the configuration is
// right again.
func TestMQTTOverTLSWithClientCertificate(t *testing.T) {
	ca, other := servicetest.NewCA(t, "edged"), servicetest.NewCA(t, "untrusted")
	server, client := ca.Server(t, "broker"), ca.Client(t, "edged-pi")
	b := servicetest.StartMosquitto(t, servicetest.MosquittoOptions{ExtraConfig: brokerLimits, TLS: &servicetest.MosquittoTLS{
		CertFile: server.CertFile, KeyFile: server.KeyFile, CAFile: ca.CertFile, RequireCertificate: true, UseIdentityAsUsername: true}})
	l := startLog(t)
	run := func(tc *tls.Config) (*sensors.MQTT, *servicetest.LogBuffer, func()) {
		var logs servicetest.LogBuffer
		src, err := sensors.NewMQTT(sensors.MQTTOptions{
			Conn:          mqttconn.Options{Broker: b.TLSURL, ClientID: "edged-tls", TLS: tc, MaxReconnectInterval: 200 * time.Millisecond},
			Subscriptions: []sensors.MQTTSubscription{{Filter: "sensors/#", QoS: 1, Decoder: numberDecoder{}}},
			DrainTimeout:  200 * time.Millisecond,
			Logger:        slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		rs := &runningSource{src: src, cancel: cancel, done: make(chan error, 1)}
		go func() { rs.done <- src.Run(ctx, sensors.LogSink{Log: l}) }()
		return src, &logs, func() { rs.stop(t) }
	}

	// The right CA and certificate: the session and its subscription exist.
	src, _, stop := run(ca.ClientTLS(t, &client))
	select {
	case <-src.Subscribed():
	case <-time.After(20 * time.Second):
		t.Fatal("no SUBACK over TLS")
	}
	publish(t, b.URL, map[string][]string{"sensors/tls": {"1", "2"}})
	waitFor(t, "2 readings over TLS", func() bool { return len(readings(t, l)) == 2 })
	stop()

	for _, bad := range []struct {
		name, hint string
		tls        *tls.Config
	}{
		{"untrusted CA", "mqtt.tls.ca_file", other.ClientTLS(t, &client)},
		{"no client certificate", "client certificate", ca.ClientTLS(t, nil)},
	} {
		t.Run(bad.name, func(t *testing.T) {
			src, logs, stop := run(bad.tls)
			publish(t, b.URL, map[string][]string{"sensors/tls": {"3", "4"}}) // queued for edged's session
			waitFor(t, "a failed attempt logged and retried", func() bool { return strings.Contains(logs.String(), "failed again") })
			stop()
			out := logs.String()
			if !strings.Contains(out, "level=ERROR") || !strings.Contains(out, bad.hint) {
				t.Errorf("no clear error naming %s in the log:\n%s", bad.hint, out)
			}
			if st := src.Stats(); st.Messages != 0 || st.Connected {
				t.Errorf("stats %+v: the source took messages over a connection it should have refused", st)
			}
			if n := len(readings(t, l)); n != 2 {
				t.Errorf("%d readings in the log; want the 2 from before", n)
			}
			t.Logf("log:\n%s", out)
		})
	}
	// Right again: the messages queued meanwhile arrive, none lost.
	src, _, stop = run(ca.ClientTLS(t, &client))
	defer stop()
	waitFor(t, "the 4 queued readings", func() bool { return len(readings(t, l)) == 6 })
	if b, _ := os.ReadFile(b.LogPath); bytes.Count(b, []byte("as edged-tls")) != 2 {
		t.Errorf("mosquitto logged %d connections of edged-tls; want 2 (the refused attempts never got in)", bytes.Count(b, []byte("as edged-tls")))
	}
}

// TestMQTTPasswordAuth: with a password_file and no anonymous access, the
// source ingests with the right password; with a wrong one it is refused,
// logs why (without the password) and takes in nothing.
func TestMQTTPasswordAuth(t *testing.T) {
	b := servicetest.StartMosquitto(t, servicetest.MosquittoOptions{DenyAnonymous: true,
		Users: map[string]string{"edged": "s3cret-right", "pub": "pub"}})
	l := startLog(t)
	for _, tc := range []struct {
		password string
		ok       bool
	}{{"s3cret-wrong", false}, {"s3cret-right", true}} {
		var logs servicetest.LogBuffer
		src, err := sensors.NewMQTT(sensors.MQTTOptions{
			Conn: mqttconn.Options{Broker: b.URL, ClientID: "edged-pw", Username: "edged", Password: tc.password,
				MaxReconnectInterval: 200 * time.Millisecond},
			Subscriptions: []sensors.MQTTSubscription{{Filter: "sensors/#", QoS: 1, Decoder: numberDecoder{}}},
			DrainTimeout:  200 * time.Millisecond,
			Logger:        slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		rs := &runningSource{src: src, cancel: cancel, done: make(chan error, 1)}
		go func() { rs.done <- src.Run(ctx, sensors.LogSink{Log: l}) }()
		if tc.ok {
			select {
			case <-src.Subscribed():
			case <-time.After(20 * time.Second):
				t.Fatalf("no SUBACK with the right password:\n%s", logs.String())
			}
			publishAs(t, b.URL, "pub", "pub", "sensors/pw", "7")
			waitFor(t, "the reading", func() bool { return len(readings(t, l)) == 1 })
		} else {
			waitFor(t, "the refusal logged and retried", func() bool { return strings.Contains(logs.String(), "failed again") })
			if out := logs.String(); !strings.Contains(out, "not Authorized") || !strings.Contains(out, "mqtt.password_file") ||
				strings.Contains(out, tc.password) {
				t.Errorf("want a clear refusal without the password in the log:\n%s", out)
			}
			if st := src.Stats(); st.Messages != 0 || st.Connected {
				t.Errorf("stats %+v with a wrong password", st)
			}
		}
		rs.stop(t)
	}
}

// publishAs publishes one QoS 1 message with credentials.
func publishAs(t *testing.T, url, user, password, topic, payload string) {
	t.Helper()
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(url).SetClientID("test-publisher-" + user).
		SetUsername(user).SetPassword(password))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publisher connect: %v", tok.Error())
	}
	defer c.Disconnect(100)
	if tok := c.Publish(topic, 1, false, payload); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publish: %v", tok.Error())
	}
}
