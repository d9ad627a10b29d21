package mqttconn_test

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/edged-io/edged/internal/mqttconn"
	"github.com/edged-io/edged/internal/servicetest"
)

// pki is a test CA with a broker certificate for 127.0.0.1 and a client
// certificate, and a second CA that signed nothing the broker uses.
type pki struct {
	ca, other *servicetest.CA
	server    servicetest.KeyPair
	client    servicetest.KeyPair
	stranger  servicetest.KeyPair // a client certificate from the other CA
}

func newPKI(t *testing.T) pki {
	ca, other := servicetest.NewCA(t, "edged"), servicetest.NewCA(t, "untrusted")
	return pki{ca: ca, other: other, server: ca.Server(t, "broker"), client: ca.Client(t, "edged-pi"),
		stranger: other.Client(t, "edged-pi")}
}

// connect makes one connection attempt with o, as edged's clients do, and
// returns the client (disconnected at the end of the test) or the error.
func connect(t *testing.T, o mqttconn.Options) (mqtt.Client, error) {
	t.Helper()
	c := mqtt.NewClient(o.ClientOptions(nil).SetConnectTimeout(5 * time.Second).SetAutoReconnect(false))
	tok := c.Connect()
	if !tok.WaitTimeout(15 * time.Second) {
		t.Fatal("connect: no answer in 15 s")
	}
	if err := tok.Error(); err != nil {
		return nil, err
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return c, nil
}

// roundTrip publishes a message through c and receives it back: data
// flows over the connection.
func roundTrip(t *testing.T, c mqtt.Client) {
	t.Helper()
	got := make(chan string, 1)
	topic := "mqttconn/" + strings.ReplaceAll(t.Name(), "/", "-")
	if tok := c.Subscribe(topic, 1, func(_ mqtt.Client, m mqtt.Message) { got <- string(m.Payload()) }); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	if tok := c.Publish(topic, 1, false, "21.5"); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publish: %v", tok.Error())
	}
	select {
	case p := <-got:
		if p != "21.5" {
			t.Fatalf("received %q", p)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the message did not come back")
	}
}

// mustFail checks that err is a connection failure mentioning want and
// that Hint points at the config key to fix.
func mustFail(t *testing.T, err error, want, hintKey string) {
	t.Helper()
	if err == nil {
		t.Fatalf("connected; want a failure (%s)", want)
	}
	if !strings.Contains(err.Error(), want) {
		t.Errorf("error %q; want it to mention %q", err, want)
	}
	if h := mqttconn.Hint(err); !strings.Contains(h, hintKey) {
		t.Errorf("Hint(%q) = %q; want it to name %s", err, h, hintKey)
	}
	t.Logf("refused as expected: %v (hint: %s)", err, mqttconn.Hint(err))
}

// TestTLSTrust: over TLS, edged trusts the CA of mqtt.tls.ca_file and
// nothing else: a broker certificate from another CA, or one the
// system's roots do not know, is refused before any MQTT packet; the
// certificate must name the host dialled, unless ServerName says which
// name to expect.
func TestTLSTrust(t *testing.T) {
	p := newPKI(t)
	named := p.ca.Server(t, "named", "broker.example")
	b := servicetest.StartMosquitto(t, servicetest.MosquittoOptions{TLS: &servicetest.MosquittoTLS{
		CertFile: p.server.CertFile, KeyFile: p.server.KeyFile, CAFile: p.ca.CertFile}})
	b2 := servicetest.StartMosquitto(t, servicetest.MosquittoOptions{TLS: &servicetest.MosquittoTLS{
		CertFile: named.CertFile, KeyFile: named.KeyFile, CAFile: p.ca.CertFile}})

	t.Run("right CA", func(t *testing.T) {
		c, err := connect(t, mqttconn.Options{Broker: b.TLSURL, ClientID: "t-right", TLS: p.ca.ClientTLS(t, nil)})
		if err != nil {
			t.Fatal(err)
		}
		roundTrip(t, c)
	})
	t.Run("untrusted CA", func(t *testing.T) {
		_, err := connect(t, mqttconn.Options{Broker: b.TLSURL, ClientID: "t-untrusted", TLS: p.other.ClientTLS(t, nil)})
		mustFail(t, err, "certificate signed by unknown authority", "mqtt.tls.ca_file")
	})
	t.Run("system roots", func(t *testing.T) {
		_, err := connect(t, mqttconn.Options{Broker: b.TLSURL, ClientID: "t-system"})
		mustFail(t, err, "certificate signed by unknown authority", "mqtt.tls.ca_file")
	})
	t.Run("other host name", func(t *testing.T) {
		_, err := connect(t, mqttconn.Options{Broker: b2.TLSURL, ClientID: "t-name", TLS: p.ca.ClientTLS(t, nil)})
		mustFail(t, err, "127.0.0.1", "mqtt.tls.server_name")
	})
	t.Run("server name", func(t *testing.T) {
		tc := p.ca.ClientTLS(t, nil)
		tc.ServerName = "broker.example"
		c, err := connect(t, mqttconn.Options{Broker: b2.TLSURL, ClientID: "t-servername", TLS: tc})
		if err != nil {
			t.Fatal(err)
		}
		roundTrip(t, c)
	})
	t.Run("plain client on the TLS port", func(t *testing.T) {
		_, err := connect(t, mqttconn.Options{Broker: strings.Replace(b.TLSURL, "ssl://", "tcp://", 1), ClientID: "t-plain"})
		if err == nil {
			t.Fatal("a plain MQTT client connected to the TLS listener")
		}
	})
}

// TestPasswordAuth: against a broker with a password_file and no
// anonymous access, the right password connects; a wrong one, or none, is
// refused with a hint naming the password file.
func TestPasswordAuth(t *testing.T) {
	b := servicetest.StartMosquitto(t, servicetest.MosquittoOptions{DenyAnonymous: true,
		Users: map[string]string{"edged": "right horse battery", "other": "x"}})
	c, err := connect(t, mqttconn.Options{Broker: b.URL, ClientID: "t-pw", Username: "edged", Password: "right horse battery"})
	if err != nil {
		t.Fatal(err)
	}
	roundTrip(t, c)
	_, err = connect(t, mqttconn.Options{Broker: b.URL, ClientID: "t-pw-wrong", Username: "edged", Password: "wrong"})
	mustFail(t, err, "not Authorized", "mqtt.password_file")
	_, err = connect(t, mqttconn.Options{Broker: b.URL, ClientID: "t-pw-none"})
	mustFail(t, err, "not Authorized", "mqtt.password_file")
}

// TestClientCertificate: a listener that requires a client certificate
// and takes its common name as the username lets in a client with a
// certificate from its CA, and refuses one without a certificate or with
// one from another CA; the log says so once (the refusal shows as a TLS
// alert or a bare reset, by timing), with a hint naming the certificate
// keys.
func TestClientCertificate(t *testing.T) {
	p := newPKI(t)
	b := servicetest.StartMosquitto(t, servicetest.MosquittoOptions{DenyAnonymous: true, TLS: &servicetest.MosquittoTLS{
		CertFile: p.server.CertFile, KeyFile: p.server.KeyFile, CAFile: p.ca.CertFile,
		RequireCertificate: true, UseIdentityAsUsername: true}})
	c, err := connect(t, mqttconn.Options{Broker: b.TLSURL, ClientID: "t-cert", TLS: p.ca.ClientTLS(t, &p.client)})
	if err != nil {
		t.Fatal(err)
	}
	roundTrip(t, c)
	_, err = connect(t, mqttconn.Options{Broker: b.TLSURL, ClientID: "t-nocert", TLS: p.ca.ClientTLS(t, nil)})
	if err == nil {
		t.Fatal("connected without a client certificate")
	}
	// The broker drops the connection after the handshake: the error is a
	// bare reset, which the logged hint explains.
	out := logAttempts(t, mqttconn.Options{Broker: b.TLSURL, ClientID: "t-nocert-logged", TLS: p.ca.ClientTLS(t, nil)})
	if strings.Count(out, "level=ERROR") != 1 || !strings.Contains(out, "asked for a client certificate") {
		t.Errorf("no hint about the missing client certificate:\n%s", out)
	}
	_, err = connect(t, mqttconn.Options{Broker: b.TLSURL, ClientID: "t-strangercert", TLS: p.ca.ClientTLS(t, &p.stranger)})
	if err == nil {
		t.Fatal("connected with a client certificate from another CA")
	}
	out = logAttempts(t, mqttconn.Options{Broker: b.TLSURL, ClientID: "t-strangercert-logged", TLS: p.ca.ClientTLS(t, &p.stranger)})
	if strings.Count(out, "level=ERROR") != 1 || !strings.Contains(out, "mqtt.tls.cert_file") {
		t.Errorf("no hint about the client certificate:\n%s", out)
	}
}

// logAttempts lets a client with o's logger retry, as edged's clients
// do, until it has failed three times, and returns the log.
func logAttempts(t *testing.T, o mqttconn.Options) string {
	t.Helper()
	var buf servicetest.LogBuffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	c := mqtt.NewClient(o.ClientOptions(log).SetConnectRetry(true).SetConnectRetryInterval(100 * time.Millisecond))
	c.Connect()
	deadline := time.Now().Add(15 * time.Second)
	for strings.Count(buf.String(), "connection attempt failed again") < 2 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	c.Disconnect(0)
	out := buf.String()
	t.Logf("log:\n%s", out)
	return out
}

// TestFailedAttemptsAreLogged: paho retries quietly; ClientOptions' logger
// gets the first failure with its hint as an error, repeats at debug; the
// password never appears.
func TestFailedAttemptsAreLogged(t *testing.T) {
	b := servicetest.StartMosquitto(t, servicetest.MosquittoOptions{DenyAnonymous: true, Users: map[string]string{"edged": "good"}})
	const planted = "pl4nted-wr0ng-pa55word"
	out := logAttempts(t, mqttconn.Options{Broker: b.URL, ClientID: "t-logged", Username: "edged", Password: planted})
	if n := strings.Count(out, "level=ERROR msg=\"mqtt: cannot connect to the broker; retrying\""); n != 1 {
		t.Errorf("%d error lines for the refused password; want 1", n)
	}
	if !strings.Contains(out, "mqtt.password_file") || !strings.Contains(out, "failed again") {
		t.Error("no hint, or repeats not at debug")
	}
	if strings.Contains(out, planted) {
		t.Fatal("the password is in the log")
	}
}

func TestValidate(t *testing.T) {
	ok := mqttconn.Options{Broker: "ssl://127.0.0.1:8883", ClientID: "c", TLS: &tls.Config{}}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		o    mqttconn.Options
	}{
		{"no broker", mqttconn.Options{ClientID: "c"}},
		{"not a URL", mqttconn.Options{Broker: "localhost:1883", ClientID: "c"}},
		{"unknown scheme", mqttconn.Options{Broker: "http://localhost:1883", ClientID: "c"}},
		{"no client id", mqttconn.Options{Broker: "tcp://localhost:1883"}},
		{"TLS on a plain URL", mqttconn.Options{Broker: "tcp://localhost:1883", ClientID: "c", TLS: &tls.Config{}}},
		{"no verification", mqttconn.Options{Broker: "ssl://localhost:8883", ClientID: "c", TLS: &tls.Config{InsecureSkipVerify: true}}},
		{"negative reconnect", mqttconn.Options{Broker: "tcp://localhost:1883", ClientID: "c", MaxReconnectInterval: -1}},
	} {
		if err := tc.o.Validate(); err == nil {
			t.Errorf("%s: accepted", tc.name)
		}
	}
	for broker, secure := range map[string]bool{"ssl://h:1": true, "tls://h:1": true, "mqtts://h:1": true, "wss://h:1": true,
		"SSL://h:1": true, "tcp://h:1": false, "mqtt://h:1": false, "ws://h:1": false} {
		if mqttconn.Secure(broker) != secure {
			t.Errorf("Secure(%q) = %v", broker, !secure)
		}
	}
}

// TestOptionsNeverShowSecrets: fmt and slog print the options without the
// password or the client key.
func TestOptionsNeverShowSecrets(t *testing.T) {
	p := newPKI(t)
	tc := p.ca.ClientTLS(t, &p.client)
	o := mqttconn.Options{Broker: "ssl://127.0.0.1:8883", ClientID: "c", Username: "u", Password: "hunter2", TLS: tc}
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("options", "conn", o)
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("options", "conn", o)
	fmt.Fprintf(&buf, "%v %+v %#v %s\n", o, o, o, o)
	fmt.Fprintf(&buf, "%v %+v\n", &o, struct{ O mqttconn.Options }{o})
	out := buf.String()
	if strings.Contains(out, "hunter2") {
		t.Errorf("the password is shown:\n%s", out)
	}
	if strings.Contains(out, "PrivateKey") || strings.Contains(out, "D:") {
		t.Errorf("the key is shown:\n%s", out)
	}
	if !strings.Contains(out, "password_set=true") {
		t.Errorf("no password_set:\n%s", out)
	}
}
