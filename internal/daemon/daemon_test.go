package daemon

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edged-io/edged"
	"github.com/edged-io/edged/internal/config"
	"github.com/edged-io/edged/internal/servicetest"
	"github.com/edged-io/edged/wal"
)

func testConfig(t *testing.T, extra string) *config.Config {
	t.Helper()
	dir := t.TempDir()
	y := fmt.Sprintf(`
device: test-pi
data_dir: %s
http: {listen: "127.0.0.1:0"}
mqtt: {embedded_listen: "127.0.0.1:%d"}
sensors:
  sim: {enabled: true, series: 3, interval: 10ms}
  thermal: {enabled: true}
%s`, dir, servicetest.FreePort(t), extra)
	c, err := config.Parse(filepath.Join(dir, "edged.yaml"), []byte(y))
	if err != nil {
		t.Fatal(err)
	}
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
	c := testConfig(t, "")
	d, stop := start(t, c)
	base := "http://" + d.Addr()
	time.Sleep(150 * time.Millisecond)
	for path, want := range map[string]string{"/healthz": "ok", "/readyz": "ready", "/api/v1/wal": `"durable_lsn"`} {
		if code, body := get(t, base+path, ""); code != 200 || !strings.Contains(body, want) {
			t.Errorf("GET %s = %d %q", path, code, body)
		}
	}
	code, body := get(t, base+"/metrics", "")
	if code != 200 || !strings.Contains(body, "edged_wal_appends_total") || strings.Contains(body, "edged_wal_appends_total 0\n") {
		t.Fatalf("metrics: %d\n%s", code, body)
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
