package servicetest

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// influxdReadyTimeout bounds how long StartInfluxd and Restart wait for
// GET /ping to answer 204.
const influxdReadyTimeout = 30 * time.Second

// Influxd is a private InfluxDB 1.8 server started by StartInfluxd. Its
// exported fields must not be modified.
//
// InfluxDB 1.8 serves the InfluxDB 2 client API (/api/v2/write,
// /api/v2/query with Flux, /ping, /health) as a compatibility layer:
//   - a bucket is "database/retention-policy" (or just "database" for the
//     default retention policy);
//   - the organization is ignored, the empty string works;
//   - authentication is disabled, so the token is not checked, unless
//     the server was started with InfluxdOptions.Auth: then only Token,
//     "username:password" of its admin user, is accepted.
type Influxd struct {
	// URL is the HTTP API's base URL, "http://127.0.0.1:PORT".
	URL string
	// Port is the HTTP API's port.
	Port int
	// Token is the token to give InfluxDB 2 clients, "user:pass".
	Token string
	// Org is the organization to give InfluxDB 2 clients, "".
	Org string
	// Database is the database created at startup, "edged".
	Database string
	// Bucket is Database's default retention policy as an InfluxDB 2
	// bucket, "edged/autogen".
	Bucket string
	// Dir is the server's private directory (configuration, meta, data and
	// wal directories, log); it is removed after the test.
	Dir string
	// ConfigPath is the configuration file the server runs with.
	ConfigPath string
	// LogPath is the file receiving the server's stdout and stderr.
	LogPath string

	bin     string
	auth    bool
	rpcPort int // bind-address, the backup/restore RPC service
	http    *http.Client

	mu   sync.Mutex
	proc *process // nil when stopped
}

// InfluxdOptions configures StartInfluxdWith. The zero value is what
// StartInfluxd starts.
type InfluxdOptions struct {
	// Auth enables authentication (auth-enabled = true): the admin user
	// "user" (password "pass") is created at start, and the server refuses
	// any token but Influxd.Token with 401.
	Auth bool
}

// StartInfluxd starts a private influxd listening on 127.0.0.1 on free ports,
// waits until GET /ping answers 204 and creates the database "edged" (bucket
// "edged/autogen"). It is stopped when the test and its subtests complete.
//
// The binary is $EDGED_INFLUXD if set, else $EDGED_TOOLS/bin/influxd, else
// ${XDG_CACHE_HOME:-$HOME/.cache}/edged/bin/influxd, else "influxd" in
// $PATH; if none exists the test fails (run `make setup`).
func StartInfluxd(t testing.TB) *Influxd {
	t.Helper()
	return StartInfluxdWith(t, InfluxdOptions{})
}

// StartInfluxdWith is StartInfluxd with options.
func StartInfluxdWith(t testing.TB, o InfluxdOptions) *Influxd {
	t.Helper()
	var candidates []string
	if tools := os.Getenv("EDGED_TOOLS"); tools != "" {
		candidates = append(candidates, filepath.Join(tools, "bin", "influxd"))
	}
	if cache := defaultCacheDir(); cache != "" {
		candidates = append(candidates, filepath.Join(cache, "edged", "bin", "influxd"))
	}
	candidates = append(candidates, "influxd")
	bin := findBinary(t, "influxd", "EDGED_INFLUXD", candidates...)

	dir := t.TempDir()
	s := &Influxd{
		Token:      "user:pass",
		Org:        "",
		Database:   "edged",
		Bucket:     "edged/autogen",
		Dir:        dir,
		ConfigPath: filepath.Join(dir, "influxdb.conf"),
		LogPath:    filepath.Join(dir, "influxd.log"),
		bin:        bin,
		auth:       o.Auth,
		// No keep-alives: no idle connections (and their goroutines) are
		// left behind by the harness's own requests.
		http: &http.Client{
			Timeout:   10 * time.Second,
			Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil},
		},
	}
	logTailOnFailure(t, "influxd", s.LogPath)
	t.Cleanup(s.Stop)

	for attempt := 1; ; attempt++ {
		s.setPorts(FreePort(t), FreePort(t))
		err := s.start()
		if err == nil {
			break
		}
		// A port may have been taken between FreePort and influxd binding
		// it: try once more on other ones.
		if attempt == 1 && errors.Is(err, errExited) {
			t.Logf("servicetest: influxd on ports %d/%d: %v; retrying on other ports", s.Port, s.rpcPort, err)
			continue
		}
		t.Fatalf("servicetest: starting influxd: %v (log: %s)", err, s.LogPath)
	}
	if s.auth {
		// The first admin user may be created without credentials.
		s.exec(t, `CREATE USER "user" WITH PASSWORD 'pass' WITH ALL PRIVILEGES`, false)
	}
	s.Exec(t, "CREATE DATABASE "+s.Database)
	return s
}

// defaultCacheDir mirrors scripts/setup-test-env.sh's
// ${XDG_CACHE_HOME:-$HOME/.cache}.
func defaultCacheDir() string {
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		return d
	}
	if h := os.Getenv("HOME"); h != "" {
		return filepath.Join(h, ".cache")
	}
	return ""
}

func (s *Influxd) setPorts(httpPort, rpcPort int) {
	s.Port = httpPort
	s.rpcPort = rpcPort
	s.URL = "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(httpPort))
}

// config renders the configuration file. Everything not set here keeps
// influxd's defaults; the UDP, Graphite, collectd and OpenTSDB listeners are
// disabled by default.
func (s *Influxd) config() string {
	q := strconv.Quote // TOML basic strings; our paths are plain
	return fmt.Sprintf(`# generated by internal/servicetest
reporting-disabled = true
bind-address = %s

[meta]
  dir = %s

[data]
  dir = %s
  wal-dir = %s
  query-log-enabled = false

[monitor]
  store-enabled = false

[http]
  enabled = true
  bind-address = %s
  auth-enabled = %t
  flux-enabled = true
  log-enabled = true
  pprof-enabled = false
  unix-socket-enabled = false

[logging]
  format = "logfmt"
  level = "info"
  suppress-logo = true
`,
		q(net.JoinHostPort("127.0.0.1", strconv.Itoa(s.rpcPort))),
		q(filepath.Join(s.Dir, "meta")),
		q(filepath.Join(s.Dir, "data")),
		q(filepath.Join(s.Dir, "wal")),
		q(net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Port))),
		s.auth,
	)
}

// influxdEnv is the environment without INFLUXDB_* variables, which influxd
// would apply on top of its configuration file.
func influxdEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "INFLUXDB_") {
			env = append(env, kv)
		}
	}
	return env
}

// start writes the configuration, starts influxd and waits for /ping. s.mu
// must be held or s not yet shared.
func (s *Influxd) start() error {
	if err := os.WriteFile(s.ConfigPath, []byte(s.config()), 0o644); err != nil {
		return err
	}
	p, err := startProcess("influxd", s.bin, []string{"run", "-config", s.ConfigPath}, influxdEnv(), s.Dir, s.LogPath)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(influxdReadyTimeout)
	for {
		if p.exited() {
			return p.exitError()
		}
		perr := s.ping()
		if perr == nil {
			s.proc = p
			return nil
		}
		if time.Now().After(deadline) {
			p.kill()
			return fmt.Errorf("influxd (pid %d) not answering GET %s/ping after %v: %v", p.pid(), s.URL, influxdReadyTimeout, perr)
		}
		select {
		case <-p.done:
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (s *Influxd) ping() error {
	req, err := http.NewRequest(http.MethodGet, s.URL+"/ping", nil)
	if err != nil {
		return err
	}
	resp, err := s.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusNoContent {
		return fmt.Errorf("GET /ping: %s", resp.Status)
	}
	return nil
}

// Exec runs InfluxQL statements (e.g. "CREATE DATABASE x", "DROP DATABASE
// edged", "CREATE RETENTION POLICY ...") through POST /query and fails t if
// the request or any statement fails.
func (s *Influxd) Exec(t testing.TB, influxQL string) {
	t.Helper()
	s.exec(t, influxQL, s.auth)
}

func (s *Influxd) exec(t testing.TB, influxQL string, auth bool) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, s.URL+"/query", strings.NewReader(url.Values{"q": {influxQL}}.Encode()))
	if err != nil {
		t.Fatalf("servicetest: influxd %q: %v", influxQL, err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if auth {
		user, pass, _ := strings.Cut(s.Token, ":")
		req.SetBasicAuth(user, pass)
	}
	resp, err := s.http.Do(req)
	if err != nil {
		t.Fatalf("servicetest: influxd %q: %v", influxQL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("servicetest: influxd %q: reading response: %v", influxQL, err)
	}
	var r struct {
		Error   string `json:"error"`
		Results []struct {
			Error string `json:"error"`
		} `json:"results"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &r) != nil {
		t.Fatalf("servicetest: influxd %q: %s: %s", influxQL, resp.Status, body)
	}
	if r.Error != "" {
		t.Fatalf("servicetest: influxd %q: %s", influxQL, r.Error)
	}
	for _, res := range r.Results {
		if res.Error != "" {
			t.Fatalf("servicetest: influxd %q: %s", influxQL, res.Error)
		}
	}
}

// PID returns the server's process id, or 0 if it is not running.
func (s *Influxd) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil || s.proc.exited() {
		return 0
	}
	return s.proc.pid()
}

// Stop stops the server gracefully: SIGTERM, then SIGKILL if it has not
// exited within 10 s. It is idempotent and returns once the process has been
// reaped.
func (s *Influxd) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil {
		s.proc.stop(stopGrace)
		s.proc = nil
	}
}

// Kill simulates a crash: it sends SIGKILL and returns once the process has
// been reaped. Points acknowledged before the crash survive (they are in the
// WAL). It is idempotent.
func (s *Influxd) Kill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil {
		s.proc.kill()
		s.proc = nil
	}
}

// Restart stops the server if it is running (as Stop does) and starts it
// again on the same port with the same data; the database persists. It
// returns once /ping answers; on failure it fails t.
func (s *Influxd) Restart(t testing.TB) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil {
		s.proc.stop(stopGrace)
		s.proc = nil
	}
	if err := s.start(); err != nil {
		t.Fatalf("servicetest: restarting influxd on %s: %v (log: %s)", s.URL, err, s.LogPath)
	}
}
