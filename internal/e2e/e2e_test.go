package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/edged-io/edged"
	"github.com/edged-io/edged/internal/servicetest"
	"github.com/edged-io/edged/wal"
)

var edgedBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "edged-e2e")
	if err != nil {
		panic(err)
	}
	edgedBin = filepath.Join(dir, "edged")
	if out, err := shippedBuild(edgedBin, "../../cmd/edged").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building edged: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// shippedBuild builds pkg into out as the packages and `make cross` do
// (static, stripped), so that memory figures are those of what users run:
// a cgo build maps libc and measured 1.3 MiB more RSS.
func shippedBuild(out, pkg string) *exec.Cmd {
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", out, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	return cmd
}

// brokerLimits: see sensors/doc.go (mosquitto's defaults drop QoS 1
// messages for a subscriber that acknowledges after fsync).
const brokerLimits = "max_inflight_messages 1000\nmax_queued_messages 1000000\n"

// dataset is S sensors × R readings, 100 ms apart, quarter-step values
// (sums are exact whatever the order), event times well in the past.
type dataset struct {
	sensors, readings int
	t0                int64 // ms, a multiple of 10 s
}

func newDataset(sensors, readings int) dataset {
	now := time.Now().UnixMilli()
	return dataset{sensors, readings, now - now%10_000 - 120_000}
}

func (d dataset) ts(i, j int) int64 { return d.t0 + int64(j)*100 + int64(i) }

func (d dataset) value(i, j int) float64 {
	x := uint64(i)*1_000_003 + uint64(j)*7919
	return float64(int64(x%800)-200) / 4
}

func (d dataset) payload(i, j int) string {
	return fmt.Sprintf(`{"ts":%d,"value":%.2f}`, d.ts(i, j), d.value(i, j))
}

type agg struct {
	count         int
	sum, min, max float64
}

// expected returns the exact aggregates per sensor and window start (ms).
func (d dataset) expected(size time.Duration) map[string]map[int64]agg {
	out := map[string]map[int64]agg{}
	ms := size.Milliseconds()
	for i := range d.sensors {
		m := map[int64]agg{}
		for j := range d.readings {
			start := d.ts(i, j) - d.ts(i, j)%ms
			a, ok := m[start]
			v := d.value(i, j)
			if !ok {
				a = agg{min: v, max: v}
			}
			a.count++
			a.sum += v
			a.min, a.max = math.Min(a.min, v), math.Max(a.max, v)
			m[start] = a
		}
		// The last window of each sensor stays open until the sentinel's
		// frontier passes it; the sentinel (15 s later) closes all of them.
		out[fmt.Sprintf("s%d/value", i)] = m
	}
	return out
}

type daemon struct {
	cmd  *exec.Cmd
	http string
	log  string
}

// writeConfig writes the test's config; extra YAML is appended.
func writeConfig(t testing.TB, dir, broker string, httpPort int, extra ...string) string {
	t.Helper()
	cfg := fmt.Sprintf(`device: e2e
data_dir: %s
http: {listen: "127.0.0.1:%d"}
wal: {fsync: interval}
mqtt:
  broker: %s
  client_id: edged-e2e
  subscriptions:
    - topic: sensors/+
      format: json
      series: "{2}/{field}"
      fields: [{path: value}]
      time: {path: ts, format: unix_ms}
sensors:
  sim: {enabled: false}
  thermal: {enabled: false}
aggregate: {windows: [1s, 10s], lateness: 2s, idle_after: 1h}
%s`, filepath.Join(dir, "data"), httpPort, broker, strings.Join(extra, "\n"))
	path := filepath.Join(dir, "edged.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func startEdged(t testing.TB, cfg string, httpPort int) *daemon {
	t.Helper()
	logPath := cfg + ".log"
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd := exec.Command(edgedBin, "run", "-c", cfg)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d := &daemon{cmd: cmd, http: fmt.Sprintf("http://127.0.0.1:%d", httpPort), log: logPath}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			lines := strings.Split(string(b), "\n")
			t.Logf("edged log (last lines):\n%s", strings.Join(lines[max(0, len(lines)-40):], "\n"))
		}
	})
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get(d.http + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return d
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("edged did not become ready")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (d *daemon) kill(t testing.TB) {
	d.cmd.Process.Signal(syscall.SIGKILL)
	d.cmd.Wait()
}

func (d *daemon) stop(t testing.TB) {
	t.Helper()
	d.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- d.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("edged exited with %v after SIGTERM", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("edged did not stop on SIGTERM")
	}
}

type queryRow struct {
	Start  time.Time          `json:"start"`
	Fields map[string]float64 `json:"fields"`
}

func (d *daemon) windows(t *testing.T, series string, size time.Duration) map[int64]queryRow {
	t.Helper()
	resp, err := http.Get(fmt.Sprintf("%s/api/v1/query?series=%s&window=%s&from=0", d.http, series, size))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var q struct{ Rows []queryRow }
	if err := json.NewDecoder(resp.Body).Decode(&q); err != nil {
		t.Fatal(err)
	}
	out := map[int64]queryRow{}
	for _, r := range q.Rows {
		out[r.Start.UnixMilli()] = r
	}
	return out
}

func publisher(t *testing.T, url string) mqtt.Client {
	t.Helper()
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(url).SetClientID(fmt.Sprintf("pub-%d", rand.Int())))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publisher: %v", tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return c
}

// publish sends the dataset j-major (event time never decreases), then a
// sentinel per sensor 15 s past the end, which closes every data window.
func publish(t *testing.T, c mqtt.Client, d dataset, pause func(n int)) {
	t.Helper()
	var toks []mqtt.Token
	n := 0
	for j := range d.readings {
		for i := range d.sensors {
			toks = append(toks, c.Publish(fmt.Sprintf("sensors/s%d", i), 1, false, d.payload(i, j)))
			n++
			if pause != nil {
				pause(n)
			}
		}
	}
	for i := range d.sensors {
		toks = append(toks, c.Publish(fmt.Sprintf("sensors/s%d", i), 1, false,
			fmt.Sprintf(`{"ts":%d,"value":0}`, d.ts(i, d.readings)+15_000)))
	}
	for _, tok := range toks {
		if !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
			t.Fatalf("publish: %v", tok.Error())
		}
	}
}

// checkWindows waits until edged serves every expected window and compares
// count, sum, min and max exactly. It returns the redelivered copies edged
// counted (as duplicates or late) and left out.
func checkWindows(t *testing.T, d *daemon, ds dataset) float64 {
	t.Helper()
	var dups float64
	for _, size := range []time.Duration{time.Second, 10 * time.Second} {
		want := ds.expected(size)
		for series, wins := range want {
			var got map[int64]queryRow
			deadline := time.Now().Add(30 * time.Second)
			for {
				got = d.windows(t, series, size)
				if len(got) >= len(wins) || time.Now().After(deadline) {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			for start, w := range wins {
				g, ok := got[start]
				if !ok {
					t.Fatalf("%s %v window %d missing (%d of %d served)", series, size, start, len(got), len(wins))
				}
				f := g.Fields
				if int(f["count"]) != w.count || f["sum"] != w.sum || f["min"] != w.min || f["max"] != w.max {
					// Errorf: the caller's log check then says whether the
					// missing reading is in the log at all.
					t.Errorf("%s %v window %d: got count %v sum %v min %v max %v, want %+v; all fields %v", series, size, start,
						f["count"], f["sum"], f["min"], f["max"], w, f)
					continue
				}
				if f["conflicts"] != 0 || f["untrusted"] != 0 {
					t.Errorf("%s %v window %d: unexpected accounting %v", series, size, start, f)
				}
				// A redelivered copy is a duplicate, or late when it comes
				// after its window closed (the window no longer knows the
				// identities it folded in): either way, not in the values.
				dups += f["duplicates"] + f["late"]
			}
		}
	}
	return dups
}

// TestWindowsEqualExactAggregates: a known dataset published with QoS 1
// through the real mosquitto comes out as exactly the expected windows.
func TestWindowsEqualExactAggregates(t *testing.T) {
	broker := servicetest.StartMosquitto(t, servicetest.MosquittoOptions{ExtraConfig: brokerLimits})
	dir := t.TempDir()
	port := servicetest.FreePort(t)
	d := startEdged(t, writeConfig(t, dir, broker.URL, port), port)
	ds := newDataset(10, 300)
	publish(t, publisher(t, broker.URL), ds, nil)
	if dups := checkWindows(t, d, ds); dups != 0 {
		t.Fatalf("%v duplicates without any crash", dups)
	}
	d.stop(t)
}

// TestKillDashNineDuringIngest: edged is killed with SIGKILL at random
// moments while a publisher sends QoS 1 readings and restarted each time.
// Afterwards every published reading is in the log and the windows equal
// the exact aggregates — what a run without crashes gives. Messages that
// were durable but not yet acknowledged are redelivered: they show up as
// counted duplicates, never in the aggregates.
func TestKillDashNineDuringIngest(t *testing.T) {
	broker := servicetest.StartMosquitto(t, servicetest.MosquittoOptions{ExtraConfig: brokerLimits})
	dir := t.TempDir()
	port := servicetest.FreePort(t)
	cfg := writeConfig(t, dir, broker.URL, port)
	d := startEdged(t, cfg, port)
	ds := newDataset(8, 400)
	rng := rand.New(rand.NewPCG(11, 12))
	kills := 0
	trials := 8
	nextKill := 200 + rng.IntN(300)
	publish(t, publisher(t, broker.URL), ds, func(n int) {
		if n%50 == 0 {
			time.Sleep(5 * time.Millisecond) // ~10k msgs/s at most
		}
		if kills < trials && n >= nextKill {
			d.kill(t)
			kills++
			d = startEdged(t, cfg, port)
			nextKill = n + 200 + rng.IntN(300)
		}
	})
	if kills < trials {
		t.Fatalf("only %d kills happened", kills)
	}
	dups := checkWindows(t, d, ds)
	d.stop(t)

	// Every published reading is in the log.
	l, err := wal.OpenReadOnly(wal.Options{Dir: filepath.Join(dir, "data", "wal")})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	seen := map[string]bool{}
	r := l.NewReader(1)
	defer r.Close()
	for {
		rec, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		rs, err := edged.DecodeRecord(nil, rec.Data, rec.LSN)
		if err != nil {
			continue // ticks
		}
		for _, x := range rs {
			seen[fmt.Sprintf("%s@%d", x.Series, x.Time/1e6)] = true
		}
	}
	for i := range ds.sensors {
		for j := range ds.readings {
			if key := fmt.Sprintf("s%d/value@%d", i, ds.ts(i, j)); !seen[key] {
				t.Fatalf("reading %s was published but is not in the log after %d kills", key, kills)
			}
		}
	}
	t.Logf("%d kills; %d readings all in the log; windows exact; %v redelivered duplicates counted", kills, ds.sensors*ds.readings, dups)
}
