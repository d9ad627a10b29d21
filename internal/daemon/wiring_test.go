package daemon

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edged-io/edged/internal/config"
	"github.com/edged-io/edged/sensors"
	"github.com/edged-io/edged/wal"
	"github.com/edged-io/edged/wal/waltest"
)

// TestBackoffCapsReachTheClients: mqtt.reconnect_max caps the reconnect
// backoff of every MQTT client the daemon builds (ingest, window output,
// alerts), ship.backoff_max the shipper's; both have their smaller
// defaults when unset.
func TestBackoffCapsReachTheClients(t *testing.T) {
	for _, tc := range []struct {
		name, yaml         string
		reconnect, backoff time.Duration
	}{
		{"defaults", "", 10 * time.Second, 30 * time.Second},
		{"set", "mqtt: {reconnect_max: 7s}\nship: {backoff_max: 45s}\n", 7 * time.Second, 45 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := config.Parse("x.yaml", []byte("device: pi\n"+tc.yaml))
			if err != nil {
				t.Fatal(err)
			}
			d := &Daemon{cfg: c, logger: slog.New(slog.DiscardHandler), now: time.Now}
			conn, err := d.mqttConn()
			if err != nil {
				t.Fatal(err)
			}
			for client, got := range map[string]time.Duration{
				"mqtt source":   d.mqttSourceOptions(conn, nil, nil).Conn.MaxReconnectInterval,
				"window output": d.windowOutputOptions(conn).Conn.MaxReconnectInterval,
				"alerts":        d.notifyOptions(conn).Conn.MaxReconnectInterval,
			} {
				if got != tc.reconnect {
					t.Errorf("%s: MaxReconnectInterval %v, want %v", client, got, tc.reconnect)
				}
			}
			if got := d.shipOptions("").BackoffMax; got != tc.backoff {
				t.Errorf("shipper: BackoffMax %v, want %v", got, tc.backoff)
			}
			if err := d.notifyOptions(conn).Validate(); err != nil {
				t.Errorf("alerts options: %v", err)
			}
		})
	}
}

// TestFailureMessagesDoNotRepeatThemselves: when the log fails (here a
// write error, as on a full disk), the error that stops the daemon names
// each component once.
func TestFailureMessagesDoNotRepeatThemselves(t *testing.T) {
	efs := &waltest.ErrorFS{FS: wal.OSFS{}}
	l, err := wal.Open(wal.Options{Dir: t.TempDir(), FS: efs, Sync: wal.SyncAlways})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx, cancel := context.WithCancel(context.Background())
	walErr := make(chan error, 1)
	go func() { walErr <- l.Run(ctx) }()
	efs.Arm(efs.Ops()+1, true)
	sim, err := sensors.NewSim(sensors.SimConfig{Series: 2, Interval: time.Millisecond}, "pi", nil)
	if err != nil {
		t.Fatal(err)
	}
	simCtx, stopSim := context.WithTimeout(ctx, 10*time.Second)
	simErr := sim.Run(simCtx, sensors.LogSink{Log: l})
	stopSim()
	cancel()
	errs := map[string]error{"sensor sim": simErr, "wal": <-walErr}
	for name, err := range errs {
		if !errors.Is(err, wal.ErrFailed) {
			t.Fatalf("%s: %v, want the log's failure", name, err)
		}
		msg := componentError(name, err).Error()
		if !strings.HasPrefix(msg, name+": ") || strings.Contains(msg, "wal: wal:") || strings.Contains(msg, "sim: sim:") {
			t.Errorf("%s failed: %q", name, msg)
		}
		t.Logf("%s", msg)
	}
	for _, tc := range []struct{ name, err, want string }{
		{"aggregator", "stream: wal: log failed", "aggregator: stream: wal: log failed"},
		{"sensor bme280[0]", "measure: no chip", "sensor bme280[0]: measure: no chip"},
		{"sensor mqtt", "mqtt: append to the log: x", "sensor mqtt: append to the log: x"},
		{"estimates log", "wal: log failed", "estimates log: wal: log failed"},
	} {
		inner := errors.New(tc.err)
		got := componentError(tc.name, inner)
		if got.Error() != tc.want || !errors.Is(got, inner) {
			t.Errorf("componentError(%q, %q) = %q, want %q", tc.name, tc.err, got, tc.want)
		}
	}
}

// TestDaemonRefusesAnEmptySecret: a secret file that holds nothing stops
// the start with its name, instead of serving the API without a token.
func TestDaemonRefusesAnEmptySecret(t *testing.T) {
	empty := filepath.Join(t.TempDir(), "http-token")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := testConfig(t, "")
	c.HTTP.TokenFile = empty
	d, err := New(c, nil)
	if err == nil {
		d.Run(canceled())
		t.Fatal("New accepted an empty http token file")
	}
	if !strings.Contains(err.Error(), empty+" is empty") {
		t.Fatalf("New: %v", err)
	}
}

func canceled() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}
