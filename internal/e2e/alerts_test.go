package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/edged-io/edged/internal/servicetest"
)

const alertRules = `alerts:
  rules:
    - name: hot
      series: "*/value"
      above: 30
      clear_below: 25
      severity: critical
      labels: {room: lab}
`

type alertMsg struct {
	Topic    string
	Retained bool
	State    string            `json:"state"`
	Rule     string            `json:"rule"`
	Series   string            `json:"series"`
	Value    float64           `json:"value"`
	ID       string            `json:"event_id"`
	Severity string            `json:"severity"`
	Labels   map[string]string `json:"labels"`
}

// alertSub records the alert messages a subscriber receives.
type alertSub struct {
	mu  sync.Mutex
	got []alertMsg
}

func subscribeAlerts(t *testing.T, url, id string) *alertSub {
	t.Helper()
	s := &alertSub{}
	handler := func(_ mqtt.Client, m mqtt.Message) {
		var a alertMsg
		if err := json.Unmarshal(m.Payload(), &a); err != nil {
			t.Errorf("alert payload %q on %s: %v", m.Payload(), m.Topic(), err)
			return
		}
		a.Topic, a.Retained = m.Topic(), m.Retained()
		s.mu.Lock()
		s.got = append(s.got, a)
		s.mu.Unlock()
	}
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(url).SetClientID(id).SetCleanSession(true))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscriber: %v", tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	if tok := c.Subscribe("edged/e2e/alerts/#", 1, handler); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	return s
}

func (s *alertSub) states() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, a := range s.got {
		out = append(out, a.Series+":"+a.State)
	}
	return out
}

func (s *alertSub) waitFor(t *testing.T, want []string) []alertMsg {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if got := s.states(); len(got) >= len(want) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // anything extra (a duplicate) shows up too
	if got := s.states(); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("alert messages: got %v, want %v", got, want)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]alertMsg(nil), s.got...)
}

// TestAlertsSurviveKillDashNine: a subscriber sees exactly firing then
// resolved for a scripted series, with one event id and the rule's
// severity and labels, although edged is killed with SIGKILL while the
// alert fires and the reading that resolves it arrives while edged is
// down; a subscriber that connects later sees the retained state.
func TestAlertsSurviveKillDashNine(t *testing.T) {
	broker := servicetest.StartMosquitto(t, servicetest.MosquittoOptions{ExtraConfig: brokerLimits})
	dir := t.TempDir()
	port := servicetest.FreePort(t)
	cfg := writeConfig(t, dir, broker.URL, port, alertRules)
	sub := subscribeAlerts(t, broker.URL, "alert-sub")
	d := startEdged(t, cfg, port)
	pub := publisher(t, broker.URL)
	t0 := time.Now().Add(-time.Minute).UnixMilli()
	send := func(sensor string, i int, v float64) {
		t.Helper()
		tok := pub.Publish("sensors/"+sensor, 1, false, fmt.Sprintf(`{"ts":%d,"value":%g}`, t0+int64(i)*100, v))
		if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("publish: %v", tok.Error())
		}
	}
	// s1 stays cool throughout; s0 crosses 30 and hovers in the
	// hysteresis band, which must not resolve it.
	for i, v := range []float64{20, 22, 31, 33, 29, 26, 28} {
		send("s0", i, v)
		send("s1", i, 10)
	}
	firing := sub.waitFor(t, []string{"s0/value:firing"})
	time.Sleep(500 * time.Millisecond) // let the delivered mark reach the disk
	d.kill(t)
	send("s0", 7, 27) // still in the band
	send("s0", 8, 24) // resolves it, while edged is down
	d = startEdged(t, cfg, port)
	got := sub.waitFor(t, []string{"s0/value:firing", "s0/value:resolved"})
	d.stop(t)

	f, r := firing[0], got[1]
	if f.Topic != "edged/e2e/alerts/hot/s0/value" || f.Rule != "hot" || f.Value != 31 || f.Severity != "critical" || f.Labels["room"] != "lab" {
		t.Errorf("firing message: %+v", f)
	}
	if r.ID != f.ID || r.Value != 24 {
		t.Errorf("resolved message %+v does not continue firing %+v", r, f)
	}
	later := subscribeAlerts(t, broker.URL, "alert-sub-later")
	retained := later.waitFor(t, []string{"s0/value:resolved"})
	if !retained[0].Retained || retained[0].ID != f.ID {
		t.Errorf("retained state: %+v", retained[0])
	}
}
