package notify_test

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edged-io/edged/alerts/notify"
	"github.com/edged-io/edged/internal/mqttconn"
	"github.com/edged-io/edged/internal/servicetest"
)

// TestLifecycle: Close before Run, Run twice, and a stop while the broker
// is unreachable all return promptly (goleak checks the goroutines).
func TestLifecycle(t *testing.T) {
	t.Parallel()
	o := options(t, fmt.Sprintf("tcp://127.0.0.1:%d", servicetest.FreePort(t)))
	p, err := notify.New(o)
	if err != nil {
		t.Fatal(err)
	}
	p.Close()
	if err := p.Run(t.Context()); err != nil {
		t.Errorf("Run after Close: %v", err)
	}
	if err := p.Run(t.Context()); !errors.Is(err, notify.ErrRunning) {
		t.Errorf("second Run: %v, want ErrRunning", err)
	}
	p.Close() // idempotent

	p, stop := start(t, o)
	p.Publish(ev(1, 0, "r", "s", "firing"))
	time.Sleep(300 * time.Millisecond) // a few connection attempts
	began := time.Now()
	stop()
	if d := time.Since(began); d > 3*time.Second {
		t.Errorf("stopping took %v", d)
	}
	if st := p.Stats(); st.Queued != 1 || st.Connected {
		t.Errorf("Stats() = %+v", st)
	}
}

func TestValidate(t *testing.T) {
	ok := notify.Options{Conn: mqttconn.Options{Broker: "tcp://127.0.0.1:1883", ClientID: "c"}, Device: "pi"}
	if err := ok.Validate(); err != nil {
		t.Fatalf("minimal options: %v", err)
	}
	tests := []struct {
		name   string
		modify func(*notify.Options)
	}{
		{"no broker", func(o *notify.Options) { o.Conn.Broker = "" }},
		{"broker not a URL", func(o *notify.Options) { o.Conn.Broker = "localhost" }},
		{"no client id", func(o *notify.Options) { o.Conn.ClientID = "" }},
		{"no device", func(o *notify.Options) { o.Device = "" }},
		{"device with /", func(o *notify.Options) { o.Device = "a/b" }},
		{"prefix with #", func(o *notify.Options) { o.Prefix = "ed#" }},
		{"prefix with $", func(o *notify.Options) { o.Prefix = "$SYS" }},
		{"negative queue", func(o *notify.Options) { o.QueueLimit = -1 }},
		{"discovery prefix levels", func(o *notify.Options) { o.Discovery = notify.Discovery{Enabled: true, Prefix: "a/b"} }},
		{"status topic wildcard", func(o *notify.Options) { o.Discovery = notify.Discovery{Enabled: true, StatusTopic: "ha/+"} }},
	}
	for _, tt := range tests {
		o := ok
		tt.modify(&o)
		if err := o.Validate(); err == nil {
			t.Errorf("%s: no error", tt.name)
		}
		if _, err := notify.New(o); err == nil {
			t.Errorf("%s: New accepted it", tt.name)
		}
	}
	o := ok
	o.Conn.Password = "hunter2"
	var logs servicetest.LogBuffer
	slog.New(slog.NewTextHandler(&logs, nil)).Info("options", "o", o)
	if logs.Count("hunter2") != 0 {
		t.Error("the password is logged")
	}
}

func TestCorruptMark(t *testing.T) {
	o := notify.Options{Conn: mqttconn.Options{Broker: "tcp://127.0.0.1:1883", ClientID: "c"}, Device: "pi", StateDir: t.TempDir()}
	path := filepath.Join(o.StateDir, "alerts-delivered")
	if err := os.WriteFile(path, []byte("{garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := notify.New(o); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("New with a corrupt mark: %v; want an error naming %s", err, path)
	}
}
