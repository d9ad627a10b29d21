package reliability

import (
	"flag"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edged-io/edged/internal/servicetest"
)

var longFlag = flag.Bool("long", false, "run the long tier (also EDGED_RELIABILITY=long)")

// long reports whether the long tier runs: `make reliability-long`.
func long() bool { return *longFlag || os.Getenv("EDGED_RELIABILITY") == "long" }

// tier picks the short or the long figure.
func tier[T any](short, lng T) T {
	if long() {
		return lng
	}
	return short
}

// tier3 is tier with a smaller figure for -short (make test-race, where
// the race detector slows the harness down).
func tier3[T any](quick, short, lng T) T {
	if testing.Short() && !long() {
		return quick
	}
	return tier(short, lng)
}

var edgedBin string

func TestMain(m *testing.M) {
	if dir := os.Getenv(CrashFSEnv); dir != "" {
		// This process is a CrashFS server (MountCrashFS started it).
		os.Exit(ServeCrashFS(dir, os.Stdin, os.Stdout))
	}
	flag.Parse()
	dir, err := os.MkdirTemp("", "edged-reliability")
	if err != nil {
		panic(err)
	}
	// EDGED_BIN runs the suite against another build (say, of an older
	// commit, to tell a regression from an old bug).
	if edgedBin = os.Getenv("EDGED_BIN"); edgedBin == "" {
		edgedBin, err = BuildEdged(dir)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// brokerLimits: mosquitto's defaults drop QoS 1 messages for a subscriber
// that acknowledges after fsync (see sensors/doc.go).
const brokerLimits = "max_inflight_messages 1000\nmax_queued_messages 10000000\nmax_queued_bytes 0\n"

var windowSizes = []time.Duration{time.Second, 10 * time.Second}

// env is one test's world: a private mosquitto, optionally a private
// influxd, a data directory and edged's configuration.
type env struct {
	t       *testing.T
	dir     string
	broker  *servicetest.Mosquitto
	influx  *servicetest.Influxd
	token   string
	port    int
	cfg     Config
	cfgPath string
	// subscribed: edged's persistent session holds its subscriptions.
	subscribed bool
	// edgedEnv is added to edged's environment (KEY=value).
	edgedEnv []string
}

type envOptions struct {
	device      string
	ship        bool
	persistence bool // mosquitto persistence (saved every second)
}

func newEnv(t *testing.T, o envOptions) *env {
	t.Helper()
	e := &env{t: t, dir: t.TempDir(), port: servicetest.FreePort(t)}
	// With persistence, servicetest's mosquitto saves every second
	// (autosave_interval 1). Saving on every change (autosave_on_changes)
	// rewrites the whole database per message: with a backlog queued for
	// edged the broker then falls far behind its publishers.
	e.broker = servicetest.StartMosquitto(t, servicetest.MosquittoOptions{Persistence: o.persistence, ExtraConfig: brokerLimits})
	e.cfg = Config{Device: o.device, DataDir: filepath.Join(e.dir, "data"), HTTPPort: e.port, Broker: e.broker.URL}
	if o.ship {
		e.influx = servicetest.StartInfluxd(t)
		e.token = e.influx.Token
		tf := filepath.Join(e.dir, "influx-token")
		if err := os.WriteFile(tf, []byte(e.token), 0o600); err != nil {
			t.Fatal(err)
		}
		e.cfg.ShipURL, e.cfg.ShipBucket, e.cfg.ShipTokenFile = e.influx.URL, e.influx.Bucket, tf
	}
	return e
}

// write renders the configuration (after the test changed e.cfg).
func (e *env) write() string {
	e.cfgPath = e.cfg.Write(e.t, e.dir)
	return e.cfgPath
}

// start starts edged and waits until it is ready and (the first time) its
// subscriptions are in place: /readyz does not wait for the broker's
// SUBACK, and a message published before edged's very first subscription
// is not addressed to it (MQTT semantics; later restarts resume the
// persistent session, which keeps the subscription).
func (e *env) start() *Edged {
	e.t.Helper()
	if e.cfgPath == "" {
		e.write()
	}
	d := StartEdged(e.t, edgedBin, e.cfgPath, e.port, e.edgedEnv...)
	d.WaitReady(e.t, 20*time.Second)
	if !e.subscribed {
		e.waitSubscribed()
	}
	return d
}

// waitSubscribed waits for mosquitto to log edged's subscription
// (log_type subscribe: "<time>: <client id> <qos> <filter>").
func (e *env) waitSubscribed() {
	e.t.Helper()
	mark := fmt.Sprintf(": edged-%s 1 ", e.cfg.Device)
	if err := waitFor(10*time.Second, func() bool {
		b, _ := os.ReadFile(e.broker.LogPath)
		return strings.Contains(string(b), mark)
	}); err != nil {
		e.t.Fatalf("mosquitto did not log edged's subscription (%q) within 10 s", mark)
	}
	e.subscribed = true
}

func (e *env) influxQL() Influx { return Influx{URL: e.influx.URL, Database: e.influx.Database} }

// checkInflux compares edged_reading of the device with want: no reading
// missing, none extra, no wrong value (InfluxDB keeps one point per
// identity, so points == identities is the no-duplicate check; a copy
// stored under another time would be extra).
func (e *env) checkInflux(want map[Identity]Point) Diff {
	e.t.Helper()
	got, err := e.influxQL().Readings("edged_reading", e.cfg.Device)
	if err != nil {
		e.t.Fatal(err)
	}
	d := Compare(want, onlySeriesOf(want, got))
	if !d.OK() {
		e.t.Errorf("InfluxDB edged_reading: %v", d)
	}
	return d
}

// checkWAL checks that every wanted reading is in the log with its value
// and nothing else is; it returns the diff (Duplicated: identities held by
// more than one record, i.e. redelivered messages).
func (e *env) checkWAL(want map[Identity]Point) Diff {
	e.t.Helper()
	got, err := WALReadings(e.cfg.DataDir)
	if err != nil {
		e.t.Fatal(err)
	}
	d := Compare(want, onlySeriesOf(want, got))
	if !d.OK() {
		e.t.Errorf("WAL: %v", d)
	}
	return d
}

// onlySeriesOf keeps the points of got whose series want mentions (other
// sources, such as a simulated sensor, are checked separately).
func onlySeriesOf(want, got map[Identity]Point) map[Identity]Point {
	series := map[string]bool{}
	for id := range want {
		series[id.Series] = true
	}
	out := map[Identity]Point{}
	for id, p := range got {
		if series[id.Series] {
			out[id] = p
		}
	}
	return out
}

// durations summarises a sample.
type durations []time.Duration

func (d durations) pct(p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := append(durations(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[min(len(s)-1, int(p*float64(len(s))))]
}

func (d durations) String() string {
	return fmt.Sprintf("p50 %v, p90 %v, max %v (n=%d)", d.pct(0.5).Round(time.Millisecond), d.pct(0.9).Round(time.Millisecond),
		d.pct(1).Round(time.Millisecond), len(d))
}

// figures collects a test's results for RELIABILITY.md: logged, and
// appended to $EDGED_RELIABILITY_REPORT when set.
type figures struct {
	t     *testing.T
	mu    sync.Mutex
	lines []string
}

func newFigures(t *testing.T) *figures {
	f := &figures{t: t}
	t.Cleanup(f.flush)
	return f
}

func (f *figures) add(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lines = append(f.lines, fmt.Sprintf(format, args...))
}

func (f *figures) flush() {
	status := "PASS"
	if f.t.Failed() {
		status = "FAIL"
	}
	body := fmt.Sprintf("%s %s [%s tier]\n  %s\n", status, f.t.Name(), tier("short", "long"), strings.Join(f.lines, "\n  "))
	f.t.Log("\n" + body)
	if path := os.Getenv("EDGED_RELIABILITY_REPORT"); path != "" {
		if fh, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644); err == nil {
			fh.WriteString(body)
			fh.Close()
		}
	}
}

// jitter returns a random duration in [lo, hi).
func jitter(rng *rand.Rand, lo, hi time.Duration) time.Duration {
	return lo + time.Duration(rng.Int64N(int64(hi-lo)))
}

// errorLines returns the distinct messages of the ERROR lines of edged's
// text log (time stripped), joined.
func errorLines(log string) string {
	seen := map[string]bool{}
	var out []string
	for _, l := range strings.Split(log, "\n") {
		i := strings.Index(l, "level=ERROR ")
		if i < 0 {
			continue
		}
		msg := l[i+len("level=ERROR "):]
		if !seen[msg] {
			seen[msg] = true
			out = append(out, msg)
		}
	}
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, " | ")
}

// grepLines returns the lines of log containing any of the words.
func grepLines(log string, words ...string) string {
	var out []string
	for _, l := range strings.Split(log, "\n") {
		for _, w := range words {
			if strings.Contains(l, w) {
				out = append(out, l)
				break
			}
		}
	}
	return strings.Join(out, "\n")
}

// listDir lists a directory tree with file sizes.
func listDir(dir string) string {
	var files []string
	filepath.WalkDir(dir, func(p string, de fs.DirEntry, err error) error {
		if err == nil {
			if fi, err := de.Info(); err == nil {
				files = append(files, fmt.Sprintf("%s %d", strings.TrimPrefix(p, dir), fi.Size()))
			}
		}
		return nil
	})
	return strings.Join(files, "\n")
}
