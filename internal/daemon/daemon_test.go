package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/edged-io/edged"
	"github.com/edged-io/edged/internal/config"
	"github.com/edged-io/edged/internal/servicetest"
	"github.com/edged-io/edged/sensors/periph"
	"github.com/edged-io/edged/wal"
)

func testConfig(t *testing.T, extra string) *config.Config {
	t.Helper()
	dir := t.TempDir()
	y := fmt.Sprintf(`
device: test-pi
data_dir: %s
http: {listen: "127.0.0.1:0"}
sensors:
  sim: {enabled: true, series: 3, interval: 10ms}
  thermal: {enabled: true}
%s`, dir, extra)
	c, err := config.Parse(filepath.Join(dir, "edged.yaml"), []byte(y))
	if err != nil {
		t.Fatal(err)
	}
	c.MQTT.EmbeddedListen = fmt.Sprintf("127.0.0.1:%d", servicetest.FreePort(t))
	return c
}

func start(t *testing.T, c *config.Config) (*Daemon, func() error) {
	t.Helper()
	d, err := New(c, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for !d.ready.Load() {
		if time.Now().After(deadline) {
			t.Fatal("daemon not ready")
		}
		time.Sleep(5 * time.Millisecond)
	}
	stop := func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(15 * time.Second):
			t.Fatal("daemon did not stop")
			return nil
		}
	}
	return d, stop
}

func get(t *testing.T, url, token string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestDaemonRunsSimIntoTheLogAndServesHTTP(t *testing.T) {
	c := testConfig(t, "aggregate: {windows: [200ms, 1s], lateness: 50ms}\n")
	d, stop := start(t, c)
	base := "http://" + d.Addr()
	time.Sleep(1500 * time.Millisecond)
	code, body := get(t, base+"/api/v1/query?series=sim/1&window=200ms&from=0", "")
	var q struct {
		Rows []struct {
			Fields map[string]float64 `json:"fields"`
		} `json:"rows"`
	}
	if err := json.Unmarshal([]byte(body), &q); code != 200 || err != nil || len(q.Rows) < 3 {
		t.Fatalf("query: %d %v %s", code, err, body)
	}
	for _, r := range q.Rows { // at most 20 readings at 10ms in 200ms (fewer if the machine is busy)
		f := r.Fields
		if n := f["count"]; n < 1 || n > 21 || f["min"] > f["mean"] || f["mean"] > f["max"] || f["sum"] != f["mean"]*n && math.Abs(f["sum"]-f["mean"]*n) > 1e-9 {
			t.Fatalf("window fields %v", f)
		}
	}
	if code, body := get(t, base+"/api/v1/series", ""); code != 200 || !strings.Contains(body, `"series": "sim/2"`) {
		t.Fatalf("series: %d %s", code, body)
	}
	if code, _ := get(t, base+"/api/v1/query?series=sim/1&window=7s", ""); code != 400 {
		t.Fatalf("query of an unconfigured window: %d", code)
	}
	for path, want := range map[string]string{"/healthz": "ok", "/readyz": "ready", "/api/v1/wal": `"durable_lsn"`} {
		if code, body := get(t, base+path, ""); code != 200 || !strings.Contains(body, want) {
			t.Errorf("GET %s = %d %q", path, code, body)
		}
	}
	code, body = get(t, base+"/metrics", "")
	if code != 200 || !strings.Contains(body, "edged_aggregate_windows_total") || !strings.Contains(body, "edged_wal_appends_total") || strings.Contains(body, "edged_wal_appends_total 0\n") {
		t.Fatalf("metrics: %d\n%s", code, body)
	}
	for _, m := range []string{"edged_view_lanes ", "edged_view_damaged 0\n", "edged_view_write_errors_total 0\n"} {
		if !strings.Contains(body, m) {
			t.Errorf("metrics lack %q:\n%s", m, grepLines(body, "edged_view"))
		}
	}
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	l, err := wal.OpenReadOnly(wal.Options{Dir: filepath.Join(c.DataDir, "wal")})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	r := l.NewReader(1)
	defer r.Close()
	n := 0
	for {
		rec, err := r.Next()
		if err != nil {
			break
		}
		if edged.Kind(rec.Data) == edged.KindTick {
			continue
		}
		rs, err := edged.DecodeRecord(nil, rec.Data, rec.LSN)
		if err != nil || len(rs) != 3 || rs[0].Device != "test-pi" {
			t.Fatalf("record %d: %v %+v", rec.LSN, err, rs)
		}
		n++
	}
	if n < 5 {
		t.Fatalf("only %d sim records in the log", n)
	}
}

func TestDaemonRequiresTokenOffLoopback(t *testing.T) {
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	os.WriteFile(tokenFile, []byte("letmein\n"), 0o600)
	c := testConfig(t, "")
	c.HTTP.TokenFile = tokenFile
	d, stop := start(t, c)
	defer stop()
	base := "http://" + d.Addr()
	if code, _ := get(t, base+"/metrics", ""); code != http.StatusUnauthorized {
		t.Fatalf("no token: %d", code)
	}
	if code, _ := get(t, base+"/metrics", "wrong"); code != http.StatusUnauthorized {
		t.Fatalf("wrong token: %d", code)
	}
	if code, _ := get(t, base+"/metrics", "letmein"); code != 200 {
		t.Fatalf("right token: %d", code)
	}
	if code, _ := get(t, base+"/healthz", ""); code != 200 {
		t.Fatalf("healthz must stay open for probes: %d", code)
	}
	if _, err := config.Parse("x.yaml", []byte("http: {listen: \"0.0.0.0:9\"}\n")); err == nil {
		t.Fatal("a non-loopback listen address without a token was accepted")
	}
}

func TestDaemonReportsABusyBrokerPort(t *testing.T) {
	c := testConfig(t, "")
	other := servicetest.StartMosquitto(t, servicetest.MosquittoOptions{})
	c.MQTT.EmbeddedListen = other.Addr
	d, err := New(c, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = d.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "is another broker running") {
		t.Fatalf("Run = %v", err)
	}
}

// TestDaemonIngestsMQTTThroughTheEmbeddedBroker: a number and a JSON
// subscription on the embedded broker; good messages become readings and
// windows, a malformed one lands in the dead-letter store and the metrics.
func TestDaemonIngestsMQTTThroughTheEmbeddedBroker(t *testing.T) {
	c := testConfig(t, `aggregate: {windows: [200ms, 1s], lateness: 50ms, mqtt_output: {enabled: true}}
mqtt:
  subscriptions:
    - {topic: "lab/+/temp", format: number, unit: "°C"}
    - {topic: "z2m/+", format: zigbee2mqtt}
`)
	c.Sensors.Sim.Enabled = false
	d, stop := start(t, c)
	base := "http://" + d.Addr()
	deadline := time.Now().Add(10 * time.Second)
	for d.mqtt.Stats().Connected == false && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	pub := mqtt.NewClient(mqtt.NewClientOptions().AddBroker("tcp://" + c.MQTT.EmbeddedListen).SetClientID("pub"))
	if tok := pub.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	defer pub.Disconnect(50)
	windows := make(chan []byte, 100)
	if tok := pub.Subscribe("edged/test-pi/agg/200ms/lab/bench/temp", 0, func(_ mqtt.Client, m mqtt.Message) {
		select {
		case windows <- m.Payload():
		default:
		}
	}); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	for i := range 40 {
		pub.Publish("lab/bench/temp", 1, false, fmt.Sprint(20+i%5)).Wait()
		time.Sleep(10 * time.Millisecond)
	}
	pub.Publish("z2m/kitchen", 1, false, `{"temperature":21.5,"humidity":40,"linkquality":120}`).Wait()
	pub.Publish("lab/bench/temp", 1, false, "warm").Wait()
	for d.mqtt.Stats().Acked < 42 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(1200 * time.Millisecond)                                                // windows close
	if st := d.mqtt.Stats(); st.Acked != 42 || st.Rejected != 1 || st.Readings != 43 { // z2m: temperature, humidity, linkquality
		t.Fatalf("mqtt stats %+v", st)
	}
	code, body := get(t, base+"/api/v1/query?series=lab/bench/temp&window=200ms&from=0", "")
	if code != 200 || !strings.Contains(body, `"count"`) {
		t.Fatalf("query: %d %s", code, body)
	}
	var got int
	for len(windows) > 0 {
		var w struct {
			Series      string  `json:"series"`
			Count       int     `json:"count"`
			Min         float64 `json:"min"`
			WindowStart int64   `json:"window_start"`
			WindowEnd   int64   `json:"window_end"`
		}
		if err := json.Unmarshal(<-windows, &w); err != nil || w.Series != "lab/bench/temp" || w.WindowEnd-w.WindowStart != 200 {
			t.Fatalf("window message: %v %+v", err, w)
		}
		got += w.Count
	}
	if got < 10 {
		_, m := get(t, base+"/metrics", "")
		t.Fatalf("window messages over MQTT covered only %d readings\n%s", got, grep(m, "window_output"))
	}
	if code, body := get(t, base+"/api/v1/deadletters", ""); code != 200 || !strings.Contains(body, "warm") {
		t.Fatalf("dead letters: %d %s", code, body)
	}
	if _, body := get(t, base+"/metrics", ""); !strings.Contains(body, `edged_ingest_rejected_total{reason="not_a_number"} 1`) {
		t.Fatalf("metrics lack the reject:\n%s", grep(body, "rejected"))
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

func grep(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestDaemonKeepsRunningWithoutSensorHardware: periph drivers configured on
// a machine without I²C or GPIO fail with a clear error each, and the
// simulated sensor keeps feeding the log; alert rules on it show up in
// /api/v1/alerts and /metrics.
func TestDaemonKeepsRunningWithoutSensorHardware(t *testing.T) {
	c := testConfig(t, `aggregate: {windows: [200ms, 1s], lateness: 50ms}
alerts:
  rules:
    - {name: sim-high, series: "sim/*", above: -1000}
`)
	c.Sensors.BME280 = []periph.BME280Config{{Name: "greenhouse", Bus: "1", Address: 0x76}}
	c.Sensors.Pulse = []periph.PulseConfig{{Name: "water", Pin: "GPIO17"}}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	d, stop := start(t, c)
	base := "http://" + d.Addr()
	deadline := time.Now().Add(10 * time.Second)
	for d.failedSources.Load() < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := d.failedSources.Load(); n != 2 {
		t.Fatalf("%d sensors reported failed, want 2 (bme280 and pulse)", n)
	}
	before := d.log.DurableLSN()
	time.Sleep(300 * time.Millisecond)
	if after := d.log.DurableLSN(); after <= before {
		t.Fatalf("the sim sensor stopped with the hardware ones: LSN %d → %d", before, after)
	}
	var resp struct {
		Alerts []struct {
			Rule, Series, State string
		} `json:"alerts"`
		Counts map[string]int `json:"counts"`
	}
	for time.Now().Before(deadline) {
		_, body := get(t, base+"/api/v1/alerts", "")
		if err := json.Unmarshal([]byte(body), &resp); err != nil {
			t.Fatalf("alerts: %v: %s", err, body)
		}
		if resp.Counts["firing"] == 3 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if resp.Counts["firing"] != 3 || len(resp.Alerts) != 3 || resp.Alerts[0].Rule != "sim-high" {
		t.Fatalf("alerts: %+v", resp)
	}
	_, metrics := get(t, base+"/metrics", "")
	for _, want := range []string{`edged_alerts{state="firing"} 3`, "edged_sensors_failed 2"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
}

// TestDaemonNotifiesSystemd: under Type=notify, the daemon says READY=1
// once running, feeds the watchdog while the log grows, and says
// STOPPING=1 on shutdown.
func TestDaemonNotifiesSystemd(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	t.Setenv("NOTIFY_SOCKET", sock)
	t.Setenv("WATCHDOG_USEC", "1000000") // pings every 500ms
	t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()))
	got := make(chan string, 64)
	go func() {
		buf := make([]byte, 256)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				close(got)
				return
			}
			got <- string(buf[:n])
		}
	}()
	_, stop := start(t, testConfig(t, ""))
	time.Sleep(2500 * time.Millisecond) // the ticker appends every second
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	var msgs []string
	deadline := time.After(2 * time.Second)
	for done := false; !done; {
		select {
		case m := <-got:
			msgs = append(msgs, m)
			done = m == "STOPPING=1"
		case <-deadline:
			done = true
		}
	}
	joined := strings.Join(msgs, " ")
	if len(msgs) < 3 || msgs[0] != "READY=1" || msgs[len(msgs)-1] != "STOPPING=1" || !strings.Contains(joined, "WATCHDOG=1") {
		t.Fatalf("notifications: %v", msgs)
	}
}

// TestDaemonRequireSync: with clock.require_sync, readings stamped with
// the local clock are untrusted exactly while the kernel says the clock is
// unsynchronised (this machine's state decides which branch runs; both
// assert).
func TestDaemonRequireSync(t *testing.T) {
	c := testConfig(t, "aggregate: {windows: [200ms, 1s], lateness: 50ms}\nclock: {require_sync: true}\n")
	d, stop := start(t, c)
	base := "http://" + d.Addr()
	time.Sleep(1500 * time.Millisecond)
	_, body := get(t, base+"/api/v1/query?series=sim/1&window=200ms&from=0", "")
	var q struct {
		Rows []struct {
			Fields map[string]float64 `json:"fields"`
		} `json:"rows"`
	}
	if err := json.Unmarshal([]byte(body), &q); err != nil || len(q.Rows) < 3 {
		t.Fatalf("query: %v %s", err, body)
	}
	synced := clockSynced()
	for _, r := range q.Rows {
		if untrusted := r.Fields["untrusted"]; synced && untrusted != 0 || !synced && (untrusted == 0 || r.Fields["count"] != 0) {
			t.Fatalf("clock synced=%v, window %v", synced, r.Fields)
		}
	}
	_, metrics := get(t, base+"/metrics", "")
	if want := fmt.Sprintf("edged_clock_synced %d", map[bool]int{false: 0, true: 1}[synced]); !strings.Contains(metrics, want) {
		t.Errorf("metrics lack %q", want)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	t.Logf("kernel clock synchronised: %v", synced)
}

// grepLines returns the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
