package reliability

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/edged-io/edged/sync/ship"
	"github.com/edged-io/edged/wal"
)

// BuildEdged builds cmd/edged into dir and returns the binary's path. The
// tests run the real binary: kill -9 must hit a real process.
func BuildEdged(dir string) (string, error) {
	bin := filepath.Join(dir, "edged")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/edged-io/edged/cmd/edged")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building edged: %v\n%s", err, out)
	}
	return bin, nil
}

// Config is the part of edged's configuration a fault test varies; the
// rest is fixed: MQTT ingest of the load generator's topics, no local
// sensors but what Extra adds, windows of 1s and 10s.
type Config struct {
	Device   string
	DataDir  string
	HTTPPort int
	// Broker is the MQTT broker edged subscribes through (possibly a Proxy).
	Broker string
	// Fsync is the WAL policy (default interval) and FsyncInterval its bound.
	Fsync         string
	FsyncInterval time.Duration
	// SegmentSize of the WAL ("" for the default).
	SegmentSize string
	// Ship, when URL is set, ships to InfluxDB.
	ShipURL, ShipBucket, ShipTokenFile string
	// Subscriptions is the YAML list under mqtt.subscriptions; empty means
	// the load generator's JSON topics (Load.Subscription), "[]" none.
	Subscriptions string
	// SimInterval, when set, runs one simulated local sensor (series
	// sim/0) at this interval: a source with no broker to replay it.
	SimInterval time.Duration
	// Extra YAML appended at the top level (alerts, …).
	Extra string
	// MQTT is YAML added under mqtt: (username, password_file, tls, …),
	// one key per line.
	MQTT string
	// HTTPTokenFile, when set, makes the API require its bearer token.
	HTTPTokenFile string
	// LogLevel is edged's log_level (default info).
	LogLevel string
}

// Write renders the configuration into dir/edged.yaml.
func (c Config) Write(t testing.TB, dir string) string {
	t.Helper()
	fsync := c.Fsync
	if fsync == "" {
		fsync = "interval"
	}
	fi := c.FsyncInterval
	if fi == 0 {
		fi = 5 * time.Millisecond
	}
	seg := ""
	if c.SegmentSize != "" {
		seg = ", segment_size: " + c.SegmentSize
	}
	subs := c.Subscriptions
	switch subs {
	case "":
		subs = "\n" + indent(Subscription, "    ")
	case "[]":
		subs = " []"
	default:
		subs = "\n" + indent(subs, "    ")
	}
	sim := "{enabled: false}"
	if c.SimInterval > 0 {
		sim = fmt.Sprintf("{enabled: true, series: 1, interval: %s, seed: 1}", c.SimInterval)
	}
	shipYAML := ""
	if c.ShipURL != "" {
		shipYAML = fmt.Sprintf("ship: {url: %q, bucket: %q, token_file: %q, flush_interval: 100ms, batch_size: 5000}\n",
			c.ShipURL, c.ShipBucket, c.ShipTokenFile)
	}
	level := c.LogLevel
	if level == "" {
		level = "info"
	}
	token := ""
	if c.HTTPTokenFile != "" {
		token = fmt.Sprintf(", token_file: %q", c.HTTPTokenFile)
	}
	mqttExtra := ""
	if c.MQTT != "" {
		mqttExtra = indent(c.MQTT, "  ") + "\n"
	}
	cfg := fmt.Sprintf(`device: %s
data_dir: %s
log_level: %s
http: {listen: "127.0.0.1:%d"%s}
wal: {fsync: %s, fsync_interval: %s%s}
mqtt:
  broker: %s
  client_id: edged-%s
%s  subscriptions:%s
sensors:
  sim: %s
  thermal: {enabled: false}
aggregate: {windows: [1s, 10s], lateness: 2s, idle_after: 1h}
%s%s
`, c.Device, c.DataDir, level, c.HTTPPort, token, fsync, fi, seg, c.Broker, c.Device, mqttExtra, subs, sim, shipYAML, c.Extra)
	path := filepath.Join(dir, "edged.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func indent(s, prefix string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = prefix + l
	}
	return strings.Join(lines, "\n")
}

// Edged is one run of the real edged binary. Start it with StartEdged;
// Kill and Stop end it, and a new Edged restarts it on the same data.
type Edged struct {
	Bin, ConfigPath, LogPath string
	// Base is the HTTP API's base URL.
	Base string
	// Started is when the process was started.
	Started time.Time

	cmd  *exec.Cmd
	done chan struct{}
	err  error // cmd.Wait's result, valid once done is closed
}

var apiClient = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 4}}

// StartEdged starts edged with the configuration and returns at once: see
// WaitReady. Its output is appended to the config's .log file, which is
// printed (tail) if the test fails. The process dies with the test binary
// (parent-death signal) and is killed when the test ends. env adds
// variables (KEY=value) to the test's environment, such as the test clock
// (EDGED_TEST_CLOCK_FILE).
func StartEdged(t testing.TB, bin, cfgPath string, httpPort int, env ...string) *Edged {
	t.Helper()
	e, err := startEdged(bin, cfgPath, httpPort, env...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		e.Kill()
		if t.Failed() {
			t.Logf("edged log %s (last lines):\n%s", e.LogPath, tail(e.LogPath, 40))
		}
	})
	return e
}

func startEdged(bin, cfgPath string, httpPort int, env ...string) (*Edged, error) {
	e := &Edged{Bin: bin, ConfigPath: cfgPath, LogPath: cfgPath + ".log",
		Base: fmt.Sprintf("http://127.0.0.1:%d", httpPort), done: make(chan struct{})}
	f, err := os.OpenFile(e.LogPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fmt.Fprintf(f, "--- reliability: start %s ---\n", time.Now().Format(time.RFC3339Nano))
	e.cmd = exec.Command(bin, "run", "-c", cfgPath)
	e.cmd.Stdout, e.cmd.Stderr = f, f
	if len(env) > 0 {
		e.cmd.Env = append(os.Environ(), env...)
	}
	e.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	e.Started = time.Now()
	if err := e.cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		e.err = e.cmd.Wait()
		close(e.done)
	}()
	return e, nil
}

// WaitReady waits until /readyz answers 200 and returns the time since
// the process started; it fails t if edged exits first or times out.
func (e *Edged) WaitReady(t testing.TB, timeout time.Duration) time.Duration {
	t.Helper()
	d, err := e.Ready(timeout)
	if err != nil {
		t.Fatalf("%v\n%s", err, tail(e.LogPath, 30))
	}
	return d
}

// Ready is WaitReady returning an error instead.
func (e *Edged) Ready(timeout time.Duration) (time.Duration, error) {
	deadline := time.Now().Add(timeout)
	for {
		if e.Exited() {
			return 0, fmt.Errorf("edged exited before it was ready: %v", e.err)
		}
		if resp, err := apiClient.Get(e.Base + "/readyz"); err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return time.Since(e.Started), nil
			}
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("edged not ready after %v", timeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// WaitIngest waits until this process has acknowledged at least one MQTT
// message (its record is durable: edged acknowledges only then) and
// returns the time since the process started. It reports false if the
// process exits or timeout passes first.
func (e *Edged) WaitIngest(timeout time.Duration) (time.Duration, bool) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) && !e.Exited() {
		if m, err := e.Metrics(); err == nil && m["edged_mqtt_acked_total"] > 0 {
			return time.Since(e.Started), true
		}
		time.Sleep(10 * time.Millisecond)
	}
	return 0, false
}

// PID is the process id.
func (e *Edged) PID() int { return e.cmd.Process.Pid }

// Exited reports whether the process has ended.
func (e *Edged) Exited() bool {
	select {
	case <-e.done:
		return true
	default:
		return false
	}
}

// ExitErr waits for the process to end and returns how it ended (nil: exit
// status 0).
func (e *Edged) ExitErr() error {
	<-e.done
	return e.err
}

// Kill sends SIGKILL and waits until the process is reaped. Idempotent.
func (e *Edged) Kill() {
	if !e.Exited() {
		e.cmd.Process.Signal(syscall.SIGKILL)
	}
	<-e.done
}

// Stop sends SIGTERM (graceful: flush, final ship) and fails t unless edged
// exits with status 0 within the timeout.
func (e *Edged) Stop(t testing.TB) {
	t.Helper()
	e.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-e.done:
		if e.err != nil {
			t.Fatalf("edged exited with %v after SIGTERM\n%s", e.err, tail(e.LogPath, 30))
		}
	case <-time.After(30 * time.Second):
		t.Fatal("edged did not stop within 30s of SIGTERM")
	}
}

// getJSON decodes GET path into v.
func (e *Edged) getJSON(path string, v any) error {
	resp, err := apiClient.Get(e.Base + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("GET %s: %s: %s", path, resp.Status, b)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// Metrics scrapes /metrics into a map keyed by name and labels exactly as
// exposed, e.g. `edged_ingest_rejected_total{reason="empty"}`.
func (e *Edged) Metrics() (map[string]float64, error) {
	resp, err := apiClient.Get(e.Base + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	m := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			m[line[:i]] = v
		}
	}
	return m, sc.Err()
}

// Ship returns /api/v1/ship's statistics.
func (e *Edged) Ship() (ship.Stats, error) {
	var r struct {
		Enabled bool       `json:"enabled"`
		Stats   ship.Stats `json:"stats"`
	}
	err := e.getJSON("/api/v1/ship", &r)
	return r.Stats, err
}

// WAL returns /api/v1/wal.
func (e *Edged) WAL() (wal.Stats, error) {
	var s wal.Stats
	err := e.getJSON("/api/v1/wal", &s)
	return s, err
}

// Window is one row of /api/v1/query.
type Window struct {
	Start  time.Time          `json:"start"`
	End    time.Time          `json:"end"`
	Fields map[string]float64 `json:"fields"`
}

// Windows returns every stored window of a series and size (from the
// epoch to a day ahead), keyed by start in ms.
func (e *Edged) Windows(series string, size time.Duration) (map[int64]Window, error) {
	var q struct{ Rows []Window }
	to := time.Now().Add(24 * time.Hour).Unix()
	if err := e.getJSON(fmt.Sprintf("/api/v1/query?series=%s&window=%s&from=0&to=%d", series, size, to), &q); err != nil {
		return nil, err
	}
	out := make(map[int64]Window, len(q.Rows))
	for _, r := range q.Rows {
		out[r.Start.UnixMilli()] = r
	}
	return out, nil
}

// WindowsRange is Windows over [from, to) as Unix seconds, keyed by start
// in ms: rows far from today (1970, ten years ahead) need an explicit range.
func (e *Edged) WindowsRange(series string, size time.Duration, from, to int64) ([]Window, error) {
	var q struct{ Rows []Window }
	err := e.getJSON(fmt.Sprintf("/api/v1/query?series=%s&window=%s&from=%d&to=%d", series, size, from, to), &q)
	return q.Rows, err
}

// DeadLetter is one entry of /api/v1/deadletters.
type DeadLetter struct {
	Topic   string `json:"topic"`
	Reason  string `json:"reason"`
	Payload string `json:"payload"`
	Size    int    `json:"size"`
}

// DeadLetters returns the newest dead letters (at most 100).
func (e *Edged) DeadLetters() ([]DeadLetter, error) {
	var d []DeadLetter
	err := e.getJSON("/api/v1/deadletters", &d)
	return d, err
}

// Proc is what the kernel says about the process.
type Proc struct {
	RSS int64 // bytes
	FDs int
}

// Proc reads /proc/PID.
func (e *Edged) Proc() (Proc, error) {
	pid := e.PID()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return Proc{}, err
	}
	var p Proc
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			p.RSS = kb << 10
		}
	}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return Proc{}, err
	}
	p.FDs = len(fds)
	return p, nil
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// Supervisor plays systemd's Restart=on-failure for one edged: whenever
// the process exits with an error it is started again after RestartSec.
// Current returns the live process.
type Supervisor struct {
	bin, cfg     string
	port         int
	restartDelay time.Duration

	mu       sync.Mutex
	cur      *Edged
	starts   int
	failures []string
	stop     chan struct{}
	stopped  chan struct{}
}

// Supervise starts edged and restarts it after each failure. When the test
// ends, supervision stops and the current process is killed.
func Supervise(t testing.TB, bin, cfg string, port int, restartDelay time.Duration) *Supervisor {
	t.Helper()
	s := &Supervisor{bin: bin, cfg: cfg, port: port, restartDelay: restartDelay,
		stop: make(chan struct{}), stopped: make(chan struct{})}
	cur, err := startEdged(bin, cfg, port)
	if err != nil {
		t.Fatal(err)
	}
	s.cur, s.starts = cur, 1
	go s.loop()
	t.Cleanup(func() {
		s.Close()
		s.Current().Kill()
		if t.Failed() {
			t.Logf("edged log %s (last lines):\n%s", cur.LogPath, tail(cur.LogPath, 60))
		}
	})
	return s
}

func (s *Supervisor) loop() {
	defer close(s.stopped)
	for {
		s.mu.Lock()
		cur := s.cur
		s.mu.Unlock()
		select {
		case <-s.stop:
			return
		case <-cur.done:
		}
		if cur.err == nil {
			return // a clean exit is not restarted (Restart=on-failure)
		}
		s.mu.Lock()
		s.failures = append(s.failures, cur.err.Error())
		s.mu.Unlock()
		select {
		case <-s.stop:
			return
		case <-time.After(s.restartDelay):
		}
		next, err := startEdged(s.bin, s.cfg, s.port)
		s.mu.Lock()
		if err != nil {
			s.failures = append(s.failures, "start: "+err.Error())
			s.mu.Unlock()
			return
		}
		s.cur = next
		s.starts++
		s.mu.Unlock()
	}
}

// Current is the latest process.
func (s *Supervisor) Current() *Edged {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur
}

// Starts is how often edged was started.
func (s *Supervisor) Starts() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.starts
}

// Failures says how each failed run ended.
func (s *Supervisor) Failures() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.failures...)
}

// Close stops supervising (the process keeps running). Idempotent.
func (s *Supervisor) Close() {
	s.mu.Lock()
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	s.mu.Unlock()
	<-s.stopped
}

var errTimeout = errors.New("timed out")

// waitFor polls cond every 20 ms until it is true, or fails after timeout.
func waitFor(timeout time.Duration, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return errTimeout
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}
