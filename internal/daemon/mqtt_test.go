package daemon

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edged-io/edged/internal/config"
	"github.com/edged-io/edged/internal/mqttconn"
	"github.com/edged-io/edged/internal/servicetest"
)

// TestMQTTSettingsReachEveryClient: the broker, the credentials and
// mqtt.tls reach the ingest source, the window output and the alert
// publisher alike, each under its own client id.
func TestMQTTSettingsReachEveryClient(t *testing.T) {
	ca := servicetest.NewCA(t, "edged")
	client := ca.Client(t, "edged-pi")
	pw := filepath.Join(t.TempDir(), "mqtt-password")
	os.WriteFile(pw, []byte("s3cret\n"), 0o600)
	c, err := config.Parse("x.yaml", []byte(fmt.Sprintf(`device: pi
mqtt:
  broker: ssl://broker.lan:8883
  username: edged
  password_file: %s
  tls: {ca_file: %s, cert_file: %s, key_file: %s, server_name: broker.lan}
`, pw, ca.CertFile, client.CertFile, client.KeyFile)))
	if err != nil {
		t.Fatal(err)
	}
	d := &Daemon{cfg: c, logger: slog.New(slog.DiscardHandler), now: time.Now}
	conn, err := d.mqttConn()
	if err != nil {
		t.Fatal(err)
	}
	for id, o := range map[string]mqttconn.Options{
		"edged-pi":        d.mqttSourceOptions(conn, nil, nil).Conn,
		"edged-pi-out":    d.windowOutputOptions(conn).Conn,
		"edged-pi-alerts": d.notifyOptions(conn).Conn,
	} {
		if o.ClientID != id || o.Broker != "ssl://broker.lan:8883" || o.Username != "edged" || o.Password != "s3cret" ||
			o.TLS == nil || o.TLS.RootCAs == nil || len(o.TLS.Certificates) != 1 || o.TLS.ServerName != "broker.lan" {
			t.Errorf("client %s: %v, TLS %v", id, o, o.TLS)
		}
		if err := o.Validate(); err != nil {
			t.Errorf("client %s: %v", id, err)
		}
	}
}

// TestNewRefusesUnusableTLSFiles: a key file that is not a key stops the
// start with the config line and the file, before anything runs.
func TestNewRefusesUnusableTLSFiles(t *testing.T) {
	ca := servicetest.NewCA(t, "edged")
	client := ca.Client(t, "edged-pi")
	c := testConfig(t, fmt.Sprintf("mqtt:\n  broker: ssl://127.0.0.1:1\n  tls: {cert_file: %s, key_file: %s}\n", client.CertFile, client.CertFile))
	d, err := New(c, nil)
	if err == nil {
		d.Run(canceled())
		t.Fatal("New accepted a certificate as the key")
	}
	if !strings.Contains(err.Error(), "mqtt.tls.key_file: "+client.CertFile) {
		t.Fatalf("New: %v", err)
	}
}
