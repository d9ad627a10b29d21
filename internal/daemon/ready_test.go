package daemon

import (
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/edged-io/edged/internal/servicetest"
)

// notifySocket listens as systemd would on $NOTIFY_SOCKET and returns the
// messages it receives.
func notifySocket(t *testing.T) <-chan string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	t.Setenv("NOTIFY_SOCKET", sock)
	got := make(chan string, 64)
	go func() {
		buf := make([]byte, 256)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			got <- string(buf[:n])
		}
	}()
	return got
}

// receivedReady reports whether READY=1 arrives within d.
func receivedReady(msgs <-chan string, d time.Duration) bool {
	deadline := time.After(d)
	for {
		select {
		case m := <-msgs:
			if m == "READY=1" {
				return true
			}
		case <-deadline:
			return false
		}
	}
}

// TestDaemonReadyWaitsForTheMQTTSubscription: with an MQTT source on an
// external broker that is down at start, /readyz answers 503 and systemd
// hears no READY until the broker is back and has acknowledged the
// subscription; a message published as soon as /readyz says ready is
// ingested.
func TestDaemonReadyWaitsForTheMQTTSubscription(t *testing.T) {
	broker := servicetest.StartMosquitto(t, servicetest.MosquittoOptions{})
	broker.Stop()
	msgs := notifySocket(t)
	c := testConfig(t, fmt.Sprintf(`mqtt:
  broker: %s
  client_id: edged-ready-test
  subscriptions:
    - {topic: "lab/+/temp", format: number}
`, broker.URL))
	d, stop := start(t, c) // start waits for the components, not for readiness
	defer stop()
	readyz := "http://" + d.Addr() + "/readyz"
	for range 3 {
		if code, body := get(t, readyz, ""); code != 503 || !strings.Contains(body, "subscriptions") {
			t.Fatalf("/readyz with the broker down: %d %q", code, body)
		}
		time.Sleep(500 * time.Millisecond)
	}
	if receivedReady(msgs, 10*time.Millisecond) {
		t.Fatal("READY=1 sent with the broker down")
	}

	broker.Restart(t)
	deadline := time.Now().Add(20 * time.Second)
	for {
		code, _ := get(t, readyz, "")
		if code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz still %d after the broker came back", code)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !receivedReady(msgs, 5*time.Second) {
		t.Fatal("no READY=1 once the subscription was acknowledged")
	}
	pub := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(broker.URL).SetClientID("pub"))
	if tok := pub.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	defer pub.Disconnect(50)
	if tok := pub.Publish("lab/bench/temp", 1, false, "21.5"); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	for d.mqtt.Stats().Acked < 1 {
		if time.Now().After(deadline) {
			t.Fatalf("the message published once ready was not ingested: %+v", d.mqtt.Stats())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestDaemonTellsSystemdReadyWhileTheBrokerIsDown: after readyTimeout,
// systemd hears READY even though the broker is still away (edged runs
// on its local sensors meanwhile), while /readyz keeps saying not ready.
func TestDaemonTellsSystemdReadyWhileTheBrokerIsDown(t *testing.T) {
	old := readyTimeout
	readyTimeout = 300 * time.Millisecond
	t.Cleanup(func() { readyTimeout = old })
	msgs := notifySocket(t)
	c := testConfig(t, fmt.Sprintf(`mqtt:
  broker: tcp://127.0.0.1:%d
  subscriptions:
    - {topic: "lab/+/temp", format: number}
`, servicetest.FreePort(t)))
	d, stop := start(t, c)
	defer stop()
	if !receivedReady(msgs, 10*time.Second) {
		t.Fatal("no READY=1 after readyTimeout")
	}
	if code, _ := get(t, "http://"+d.Addr()+"/readyz", ""); code != 503 {
		t.Fatalf("/readyz with the broker down: %d", code)
	}
}
