package reliability

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/edged-io/edged/internal/servicetest"
)

// TestSecurityMQTTTLS: edged ingests through a mosquitto TLS listener that
// requires a client certificate (its common name is the username). With a
// CA file that did not sign the broker's certificate, and without a client
// certificate, edged never gets a connection: it says why in an ERROR line
// with what to fix, /readyz stays not ready, and it acknowledges nothing.
// The readings published meanwhile wait in its persistent session and all
// reach the WAL once the configuration is right again.
func TestSecurityMQTTTLS(t *testing.T) {
	t.Parallel()
	fig := newFigures(t)
	ca, other := servicetest.NewCA(t, "edged"), servicetest.NewCA(t, "untrusted")
	server, client := ca.Server(t, "mosquitto"), ca.Client(t, "edged-sec-tls")
	e := &env{t: t, dir: t.TempDir(), port: servicetest.FreePort(t)}
	e.broker = servicetest.StartMosquitto(t, servicetest.MosquittoOptions{ExtraConfig: brokerLimits, TLS: &servicetest.MosquittoTLS{
		CertFile: server.CertFile, KeyFile: server.KeyFile, CAFile: ca.CertFile, RequireCertificate: true, UseIdentityAsUsername: true}})
	e.cfg = Config{Device: "sec-tls", DataDir: filepath.Join(e.dir, "data"), HTTPPort: e.port, Broker: e.broker.TLSURL}
	tlsYAML := func(caFile string, cert bool) string {
		y := "tls:\n  ca_file: " + caFile + "\n"
		if cert {
			y += "  cert_file: " + client.CertFile + "\n  key_file: " + client.KeyFile + "\n"
		}
		return y
	}
	// The test's publisher uses the plain listener: the broker keeps
	// accepting while edged cannot connect.
	load := NewLoad(4, 100*time.Millisecond, time.Minute)
	pub, err := NewPublisher(e.broker.URL, load)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	const perPhase = 25
	next := 0
	publish := func() {
		t.Helper()
		next = pub.Publish(context.Background(), next, next+perPhase, 500, nil)
		if err := pub.WaitAccepted(next, false, 20*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	connections := func() int {
		b, _ := os.ReadFile(e.broker.LogPath)
		return strings.Count(string(b), " as edged-sec-tls (") // the ingest source's client id
	}

	// The right CA and client certificate.
	e.cfg.MQTT = tlsYAML(ca.CertFile, true)
	e.write()
	d := e.start()
	publish()
	if err := waitFor(20*time.Second, func() bool { m, _ := d.Metrics(); return m["edged_mqtt_acked_total"] >= float64(perPhase*load.Sensors) }); err != nil {
		t.Fatalf("readings over TLS not acknowledged: %v", err)
	}
	d.Stop(t)
	fig.add("right CA and client certificate: %d readings over TLS acknowledged (durable)", perPhase*load.Sensors)

	for _, bad := range []struct {
		name, mqtt, want, hint string
	}{
		{"a CA that did not sign the broker's certificate", tlsYAML(other.CertFile, true),
			"certificate signed by unknown authority", "mqtt.tls.ca_file"},
		{"no client certificate", tlsYAML(ca.CertFile, false), "certificate", "client certificate"},
	} {
		e.cfg.MQTT = bad.mqtt
		e.write()
		off := fileSize(e.cfgPath + ".log")
		before := connections()
		d := StartEdged(t, edgedBin, e.cfgPath, e.port)
		publish() // accepted by the broker, queued in edged's session
		var line string
		if err := waitFor(20*time.Second, func() bool {
			line = grepLines(readFrom(d.LogPath, off), "level=ERROR")
			return strings.Contains(line, bad.hint)
		}); err != nil {
			t.Fatalf("%s: no ERROR line naming %s; log:\n%s", bad.name, bad.hint, readFrom(d.LogPath, off))
		}
		time.Sleep(3 * time.Second) // a few more attempts (one a second)
		m, err := d.Metrics()
		if err != nil {
			t.Fatal(err)
		}
		ready, body := getStatus(d.Base + "/readyz")
		if m["edged_mqtt_acked_total"] != 0 || m["edged_mqtt_messages_total"] != 0 || m["edged_mqtt_connected"] != 0 {
			t.Errorf("%s: edged took messages: acked %v, received %v, connected %v", bad.name,
				m["edged_mqtt_acked_total"], m["edged_mqtt_messages_total"], m["edged_mqtt_connected"])
		}
		if ready == http.StatusOK {
			t.Errorf("%s: /readyz says ready", bad.name)
		}
		if n := connections() - before; n != 0 {
			t.Errorf("%s: mosquitto logged %d connections of edged", bad.name, n)
		}
		if !strings.Contains(line, bad.want) {
			t.Errorf("%s: the error does not say %q: %s", bad.name, bad.want, line)
		}
		d.Stop(t)
		fig.add("%s: refused; %d readings published meanwhile, 0 acknowledged; /readyz %d %q; logged: %s", bad.name,
			perPhase*load.Sensors, ready, strings.TrimSpace(body), firstLine(line))
	}

	// Right again: what waited in the session arrives; nothing is lost.
	e.cfg.MQTT = tlsYAML(ca.CertFile, true)
	e.write()
	d = e.start()
	queued := 2 * perPhase * load.Sensors
	if err := waitFor(30*time.Second, func() bool { m, _ := d.Metrics(); return m["edged_mqtt_acked_total"] >= float64(queued) }); err != nil {
		t.Fatalf("the readings queued during the refusals did not arrive: %v", err)
	}
	d.Stop(t)
	want := pub.Accepted(next)
	diff := e.checkWAL(want)
	key, _ := os.ReadFile(client.KeyFile)
	if leak := findSecrets(readFrom(d.LogPath, 0), keyLines(key)); leak != "" {
		t.Errorf("the client key is in edged's log: %s", leak)
	}
	fig.add("right again: the %d readings queued in the session arrived; WAL: %d of %d readings, missing %d, wrong %d; client key in the log: no",
		queued, len(want)-len(diff.Missing), len(want), len(diff.Missing), len(diff.WrongValue))
}

// TestSecurityPlantedSecrets: edged runs with a distinctive MQTT password,
// InfluxDB token and HTTP API token (from files), all three refused — the
// broker has another password for edged's user, InfluxDB (auth on) another
// token, and the test sends the API wrong tokens — at log_level debug. None
// of the planted strings may appear in edged's output, /metrics, any HTTP
// body or header, `edged check --print`, or the data directory. Then, with
// the right password and token in the same files, ingest and shipping
// work: the refusals were the credentials.
func TestSecurityPlantedSecrets(t *testing.T) {
	t.Parallel()
	fig := newFigures(t)
	dir := t.TempDir()
	nonce := fmt.Sprintf("%08x%04x", rand.Uint32(), rand.Uint32N(1<<16))
	secrets := map[string]string{
		"mqtt-password": "PLANTED-mqtt-password-" + nonce,
		"influx-token":  "edged:PLANTED-influx-token-" + nonce,
		"http-token":    "PLANTED-http-token-" + nonce,
	}
	files := map[string]string{}
	for name, v := range secrets {
		files[name] = filepath.Join(dir, name)
		if err := os.WriteFile(files[name], []byte(v+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	rightPassword := "right-mqtt-password-" + nonce
	broker := servicetest.StartMosquitto(t, servicetest.MosquittoOptions{DenyAnonymous: true, ExtraConfig: brokerLimits,
		Users: map[string]string{"edged": rightPassword, "loadgen": "loadgen"}})
	influx := servicetest.StartInfluxdWith(t, servicetest.InfluxdOptions{Auth: true})
	port := servicetest.FreePort(t)
	cfg := Config{Device: "sec-secrets", DataDir: filepath.Join(dir, "data"), HTTPPort: port, Broker: broker.URL,
		ShipURL: influx.URL, ShipBucket: influx.Bucket, ShipTokenFile: files["influx-token"], SimInterval: 50 * time.Millisecond,
		MQTT: "username: edged\npassword_file: " + files["mqtt-password"], HTTPTokenFile: files["http-token"], LogLevel: "debug"}
	cfgPath := cfg.Write(t, dir)
	planted := []string{secrets["mqtt-password"], secrets["influx-token"], secrets["http-token"], "PLANTED-", nonce}

	d := StartEdged(t, edgedBin, cfgPath, port)
	var log string
	if err := waitFor(30*time.Second, func() bool {
		log = readFrom(d.LogPath, 0)
		return strings.Contains(log, "not Authorized") && strings.Contains(log, "ship: paused")
	}); err != nil {
		t.Fatalf("edged did not log both refusals (broker, InfluxDB):\n%s", tail(d.LogPath, 40))
	}
	time.Sleep(3 * time.Second) // retries, at debug, into the log too

	// The API with wrong tokens: 401, and nothing of the token in return.
	httpToken := secrets["http-token"]
	wrong := []string{"", "Bearer wrong", "Bearer " + httpToken + "x", "Bearer " + httpToken[:len(httpToken)-1],
		"bearer " + httpToken + "x", "Basic " + base64.StdEncoding.EncodeToString([]byte("edged:"+httpToken+"x")),
		"Bearer " + secrets["mqtt-password"], "Token " + secrets["influx-token"]}
	paths := []string{"/metrics", "/readyz", "/api/v1/wal", "/api/v1/ship", "/api/v1/alerts", "/api/v1/series",
		"/api/v1/deadletters", "/api/v1/query?series=sim/0&window=1s", "/api/v1/query?window=banana", "/api/v1/nope", "/debug/pprof/"}
	requests, scanned := 0, 0
	for _, auth := range wrong {
		for _, p := range paths {
			status, resp := request(t, d.Base+p, auth)
			requests++
			scanned += len(resp)
			if status != http.StatusUnauthorized {
				t.Errorf("GET %s with %q: %d, want 401", p, redact(auth, planted), status)
			}
			if leak := findSecrets(resp, planted); leak != "" {
				t.Errorf("GET %s with a wrong token: the response holds %s", p, leak)
			}
		}
	}
	// The right token: every answer (errors included) is free of them.
	var metrics string
	for _, p := range append(paths, "/healthz") {
		status, resp := request(t, d.Base+p, "Bearer "+httpToken)
		requests++
		scanned += len(resp)
		if status == http.StatusUnauthorized {
			t.Errorf("GET %s with the right token: 401", p)
		}
		if leak := findSecrets(resp, planted); leak != "" {
			t.Errorf("GET %s: the response holds %s", p, leak)
		}
		if p == "/metrics" {
			metrics = resp
		}
	}
	if !strings.Contains(metrics, "\nedged_ship_paused 1") || !strings.Contains(metrics, "\nedged_mqtt_connected 0") {
		t.Errorf("/metrics does not show the refusals (edged_ship_paused 1, edged_mqtt_connected 0)")
	}

	// edged check, with and without --print.
	for _, args := range [][]string{{"check", "-c", cfgPath}, {"check", "-c", cfgPath, "--print"}} {
		out, err := exec.Command(edgedBin, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("edged %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		if leak := findSecrets(string(out), planted); leak != "" {
			t.Errorf("edged %s prints %s", strings.Join(args, " "), leak)
		}
		if args[len(args)-1] == "--print" && !strings.Contains(string(out), files["http-token"]) {
			t.Errorf("edged check --print does not show the token file's path:\n%s", out)
		}
	}
	d.Stop(t)
	log = readFrom(d.LogPath, 0)
	if leak := findSecrets(log, planted); leak != "" {
		t.Errorf("edged's log holds %s", leak)
	}
	if leak := findSecretsInDir(t, cfg.DataDir, planted); leak != "" {
		t.Errorf("the data directory holds %s", leak)
	}
	fig.add("planted: MQTT password, InfluxDB token, HTTP token (files), log_level debug; refused by mosquitto (%q), InfluxDB (401, shipping paused) and the API",
		"not Authorized")
	fig.add("scanned: edged's output %d lines, %d HTTP answers (%d with wrong tokens, all 401; %d KiB), /metrics, edged check [--print], the data directory: 0 occurrences",
		strings.Count(log, "\n"), requests, len(wrong)*len(paths), scanned>>10)
	fig.add("logged: %s | %s", firstLine(grepLines(log, "level=ERROR msg=\"mqtt: cannot connect")), firstLine(grepLines(log, "ship: paused")))

	// The right password and token in the same files: it works.
	os.WriteFile(files["mqtt-password"], []byte(rightPassword+"\n"), 0o600)
	os.WriteFile(files["influx-token"], []byte(influx.Token+"\n"), 0o600)
	off := fileSize(d.LogPath)
	d = StartEdged(t, edgedBin, cfgPath, port)
	if err := waitFor(20*time.Second, func() bool { s, _ := request(t, d.Base+"/readyz", "Bearer "+httpToken); return s == 200 }); err != nil {
		t.Fatalf("not ready with the right password:\n%s", tail(d.LogPath, 30))
	}
	if err := waitFor(10*time.Second, func() bool { return strings.Contains(readFile(broker.LogPath), ": edged-sec-secrets 1 rel/+") }); err != nil {
		t.Fatal("mosquitto did not log edged's subscription")
	}
	publishWith(t, broker.URL, "loadgen", "loadgen", "rel/s0", `{"seq":0,"ts":`+strconv.FormatInt(time.Now().UnixMilli(), 10)+`,"value":21.5}`)
	var batches, acked float64
	if err := waitFor(30*time.Second, func() bool {
		_, m := request(t, d.Base+"/metrics", "Bearer "+httpToken)
		acked, batches = metricValue(m, "edged_mqtt_acked_total"), metricValue(m, "edged_ship_batches_total")
		return acked >= 1 && batches >= 1 && strings.Contains(m, "\nedged_ship_paused 0")
	}); err != nil {
		t.Fatalf("with the right password and token: acked %v, batches shipped %v\n%s", acked, batches, tail(d.LogPath, 30))
	}
	d.Stop(t)
	if leak := findSecrets(readFrom(d.LogPath, off), []string{rightPassword}); leak != "" {
		t.Errorf("the right password is in the log: %s", leak)
	}
	fig.add("with the right password and token in the same files: ingest acknowledged, shipping resumed, the right password not in the log either")
}

// TestSecurityHTTPListen: the API binds loopback by default, and a
// non-loopback http.listen without http.token_file is refused by `edged
// check` and by `edged run` (which then binds nothing), with the file,
// line and what to do.
func TestSecurityHTTPListen(t *testing.T) {
	t.Parallel()
	fig := newFigures(t)
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "http-token")
	os.WriteFile(tokenFile, []byte("a-token\n"), 0o600)
	base := fmt.Sprintf("device: sec-listen\ndata_dir: %s\nsensors: {sim: {enabled: true, series: 1, interval: 100ms}, thermal: {enabled: false}}\n"+
		"mqtt: {broker: \"tcp://127.0.0.1:1\"}\nalerts: {homeassistant: {discovery: false}}\n", filepath.Join(dir, "data"))
	write := func(name, http string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(base+http), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}

	// The default.
	def := write("default.yaml", "")
	out, err := exec.Command(edgedBin, "check", "-c", def, "--print").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "listen: 127.0.0.1:8080") {
		t.Fatalf("edged check --print of a config without http: %v\n%s", err, out)
	}
	// And what the daemon binds with it: only loopback (or, when another
	// process holds 127.0.0.1:8080 on this shared machine, a refusal that
	// names it).
	d := StartEdged(t, edgedBin, def, 8080)
	var listening []string
	waitFor(10*time.Second, func() bool {
		listening = listeningAddrs(d.PID())
		return d.Exited() || len(listening) > 0
	})
	if d.Exited() {
		if log := readFrom(d.LogPath, 0); !strings.Contains(log, "listen on 127.0.0.1:8080") {
			t.Fatalf("edged exited without binding 127.0.0.1:8080:\n%s", log)
		}
		fig.add("default http.listen: 127.0.0.1:8080 (edged check --print); the port was taken on this machine and edged said \"listen on 127.0.0.1:8080\"")
	} else {
		for _, a := range listening {
			if host, _, _ := net.SplitHostPort(a); !net.ParseIP(host).IsLoopback() {
				t.Errorf("edged listens on %s by default", a)
			}
		}
		fig.add("default http.listen: 127.0.0.1:8080; the running daemon listens on %v only", listening)
		d.Kill()
	}

	port := servicetest.FreePort(t)
	for _, listen := range []string{"0.0.0.0", "", "[::]", "192.0.2.10"} {
		addr := fmt.Sprintf("%s:%d", listen, port)
		cfg := write("open.yaml", fmt.Sprintf("http: {listen: %q}\n", addr))
		want := fmt.Sprintf("%s:6: http.listen: %q is not a loopback address: set http.token_file so the API requires a token", cfg, addr)
		out, err := exec.Command(edgedBin, "check", "-c", cfg).CombinedOutput()
		if code := exitCode(err); code != 1 || !strings.Contains(string(out), want) {
			t.Errorf("edged check with http.listen %s: exit %d\n%s\nwant exit 1 and %q", addr, code, out, want)
		}
		runCtx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		out, err = exec.CommandContext(runCtx, edgedBin, "run", "-c", cfg).CombinedOutput()
		cancel()
		if code := exitCode(err); code != 1 || !strings.Contains(string(out), want) {
			t.Errorf("edged run with http.listen %s: exit %d\n%s", addr, code, out)
		}
		if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second); err == nil {
			c.Close()
			t.Errorf("something listens on port %d after the refused start", port)
		}
		with := write("open-token.yaml", fmt.Sprintf("http: {listen: %q, token_file: %s}\n", addr, tokenFile))
		if out, err := exec.Command(edgedBin, "check", "-c", with).CombinedOutput(); err != nil {
			t.Errorf("edged check with http.listen %s and a token file: %v\n%s", addr, err, out)
		}
	}
	for _, listen := range []string{"localhost", "127.0.0.2", "[::1]"} {
		cfg := write("loopback.yaml", fmt.Sprintf("http: {listen: \"%s:%d\"}\n", listen, port))
		if out, err := exec.Command(edgedBin, "check", "-c", cfg).CombinedOutput(); err != nil {
			t.Errorf("edged check with the loopback http.listen %s: %v\n%s", listen, err, out)
		}
	}
	fig.add("http.listen 0.0.0.0, \"\" (all), [::], 192.0.2.10 without http.token_file: edged check and edged run exit 1 with \"FILE:6: http.listen: … is not a loopback address: set http.token_file …\", nothing bound; accepted with a token file; localhost, 127.0.0.2, [::1] accepted without")
}

// request GETs url with an Authorization header (none when auth is "")
// and returns the status and the whole answer: status line, headers, body
// (status 0 and the error when there is no answer).
func request(t *testing.T, url, auth string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := apiClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n", resp.Status)
	resp.Header.Write(&b)
	b.Write(body)
	return resp.StatusCode, b.String()
}

func getStatus(url string) (int, string) {
	resp, err := apiClient.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// findSecrets says which of the secrets s holds ("" for none), without
// repeating them: only their position in the list and a short prefix.
func findSecrets(s string, secrets []string) string {
	for i, sec := range secrets {
		if sec != "" && strings.Contains(s, sec) {
			return fmt.Sprintf("secret #%d (%.10s…)", i, sec)
		}
	}
	return ""
}

func findSecretsInDir(t *testing.T, dir string, secrets []string) string {
	var found string
	filepath.WalkDir(dir, func(p string, de fs.DirEntry, err error) error {
		if err != nil || de.IsDir() || found != "" {
			return nil
		}
		if b, err := os.ReadFile(p); err == nil {
			if leak := findSecrets(string(b), secrets); leak != "" {
				found = leak + " in " + p
			}
		}
		return nil
	})
	return found
}

// redact hides the secrets in a string for a test message.
func redact(s string, secrets []string) string {
	for _, sec := range secrets {
		s = strings.ReplaceAll(s, sec, "<secret>")
	}
	return s
}

// keyLines are the base64 lines of a PEM key.
func keyLines(pemKey []byte) []string {
	var out []string
	for _, l := range strings.Split(string(pemKey), "\n") {
		if l != "" && !strings.HasPrefix(l, "-----") {
			out = append(out, l)
		}
	}
	return out
}

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// readFrom returns a file's contents from offset off.
func readFrom(path string, off int64) string {
	b, _ := os.ReadFile(path)
	if off > int64(len(b)) {
		return ""
	}
	return string(b[off:])
}

func readFile(path string) string { return readFrom(path, 0) }

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	if i := strings.Index(l, "level="); i >= 0 {
		l = l[i:]
	}
	return l
}

func metricValue(metrics, name string) float64 {
	sc := bufio.NewScanner(strings.NewReader(metrics))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return 0
}

func exitCode(err error) int {
	if err == nil {
		return 0
	}
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	return -1
}

// publishWith publishes one QoS 1 message with credentials.
func publishWith(t *testing.T, url, user, password, topic, payload string) {
	t.Helper()
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(url).SetClientID("sec-pub-" + user).SetUsername(user).SetPassword(password))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publisher: %v", tok.Error())
	}
	defer c.Disconnect(100)
	if tok := c.Publish(topic, 1, false, payload); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publish: %v", tok.Error())
	}
}

// listeningAddrs returns the TCP addresses the process listens on, from
// /proc: its socket inodes matched against the LISTEN rows of
// /proc/PID/net/tcp and tcp6.
func listeningAddrs(pid int) []string {
	inodes := map[string]bool{}
	fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	for _, fd := range fds {
		if l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name())); err == nil && strings.HasPrefix(l, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] = true
		}
	}
	var out []string
	for _, file := range []string{"tcp", "tcp6"} {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/net/%s", pid, file))
		for _, line := range strings.Split(string(b), "\n")[1:] {
			f := strings.Fields(line)
			if len(f) < 10 || f[3] != "0A" || !inodes[f[9]] { // 0A: LISTEN
				continue
			}
			out = append(out, procAddr(f[1]))
		}
	}
	return out
}

// procAddr decodes /proc/net/tcp's "0100007F:1F90" (little-endian words).
func procAddr(s string) string {
	h, p, _ := strings.Cut(s, ":")
	raw, _ := hex.DecodeString(h)
	ip := make(net.IP, len(raw))
	for i := 0; i+4 <= len(raw); i += 4 {
		ip[i], ip[i+1], ip[i+2], ip[i+3] = raw[i+3], raw[i+2], raw[i+1], raw[i]
	}
	port, _ := strconv.ParseUint(p, 16, 16)
	return net.JoinHostPort(ip.String(), strconv.FormatUint(port, 10))
}
