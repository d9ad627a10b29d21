package packaging_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestQemu runs the packaged Raspberry Pi binaries under qemu-user on the
// CPUs of real boards (so a GOARMv7 instruction in the armhf build is an
// illegal instruction here, as on a Pi Zero): version, every example
// config, and a short run of the daemon whose log is then read back.
func TestQemu(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and emulates the ARM packages; runs without -short")
	}
	for _, a := range arches() {
		if a.qemu == nil {
			continue
		}
		t.Run(a.deb, func(t *testing.T) {
			tool(t, a.qemu[0], "Debian's qemu-user")
			root := extract(t, a)
			edged := func(args ...string) (string, error) {
				return runErr(a.qemu[0], append(append(a.qemu[1:], filepath.Join(root, "usr/bin/edged")), args...)...)
			}

			out, err := edged("version")
			if err != nil || out != "edged "+testVersion+"\n" {
				t.Fatalf("edged version: %q %v", out, err)
			}
			out, err = runErr(a.qemu[0], append(a.qemu[1:], filepath.Join(root, "usr/bin/edged-reconcile"), "version")...)
			if err != nil || out != "edged-reconcile "+testVersion+"\n" {
				t.Errorf("edged-reconcile version: %q %v", out, err)
			}

			checkReconcileConfig(t, a.qemu, filepath.Join(root, "usr/bin/edged-reconcile"),
				filepath.Join(root, "usr/share/doc/edged-reconcile/examples/reconcile.yaml"))

			// Every edged example (reconcile*.yaml are edged-reconcile's).
			configs, _ := filepath.Glob("../configs/*.yaml")
			configs = slices.DeleteFunc(configs, func(c string) bool { return strings.HasPrefix(filepath.Base(c), "reconcile") })
			if len(configs) == 0 {
				t.Fatal("no example configs in ../configs")
			}
			configs = append(configs, filepath.Join(root, "etc/edged/edged.yaml"))
			for _, c := range configs {
				if out, err := edged("check", "-c", c); err != nil || !strings.HasSuffix(out, ": OK\n") {
					t.Errorf("edged check -c %s: %q %v", c, out, err)
				}
			}

			t.Run("run", func(t *testing.T) { runSim(t, a, filepath.Join(root, "usr/bin/edged"), edged) })
		})
	}
}

// runSim runs the daemon with the simulated sensor for a few seconds, stops
// it with SIGTERM as systemd does, and reads its log back.
func runSim(t *testing.T, a arch, bin string, edged func(...string) (string, error)) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	httpAddr, mqttAddr := freeAddr(t), freeAddr(t)
	conf := filepath.Join(dir, "edged.yaml")
	err := os.WriteFile(conf, []byte(fmt.Sprintf(`device: qemu-%s
data_dir: %s/ignored
http:
  listen: %s
mqtt:
  embedded_listen: %s
sensors:
  sim:
    enabled: true
    series: 2
    interval: 100ms
  thermal:
    enabled: false
`, a.deb, dir, httpAddr, mqttAddr)), 0o644)
	if err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var logs strings.Builder
	cmd := exec.CommandContext(ctx, a.qemu[0], append(a.qemu[1:], bin, "run", "-c", conf, "--data-dir", data)...)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	// Ready within a minute, even emulated on a slow machine.
	deadline := time.Now().Add(time.Minute)
	for {
		resp, err := http.Get("http://" + httpAddr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case err := <-exited:
			t.Fatalf("edged exited before it was ready: %v\n%s", err, logs.String())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("edged not ready after a minute:\n%s", logs.String())
		}
	}
	time.Sleep(3 * time.Second)
	cmd.Process.Signal(syscall.SIGTERM) // qemu-user passes it to the guest
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("edged after SIGTERM: %v\n%s", err, logs.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("edged still running 30s after SIGTERM:\n%s", logs.String())
	}
	if _, err := os.Stat(filepath.Join(data, "wal")); err != nil {
		t.Fatalf("--data-dir not used: %v", err)
	}

	out, err := edged("wal", "verify", "--data-dir", data)
	if err != nil || !strings.HasSuffix(out, "OK\n") {
		t.Errorf("wal verify: %q %v", out, err)
	}
	out, err = edged("wal", "stats", "--json", "--data-dir", data)
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		LastLSN    uint64 `json:"last_lsn"`
		DurableLSN uint64 `json:"durable_lsn"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("wal stats --json: %v\n%s", err, out)
	}
	// 3 s of 10 readings/s and a tick per second: far more than 10 records.
	if st.LastLSN < 10 || st.DurableLSN != st.LastLSN {
		t.Errorf("wal stats: last LSN %d, durable %d: want ≥ 10, all durable after SIGTERM", st.LastLSN, st.DurableLSN)
	}
	out, err = edged("wal", "dump", "--data-dir", data, "--limit", "3")
	if err != nil || !strings.Contains(out, `"series":"sim/0"`) || !strings.Contains(out, `"device":"qemu-`+a.deb+`"`) {
		t.Errorf("wal dump: no sim readings: %q %v", out, err)
	}
	t.Logf("%s: %d records in the log after %s of emulated run", a.deb, st.LastLSN, 3*time.Second)
}

// freeAddr returns a loopback address with a port that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
