package servicetest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// mosquittoReadyTimeout bounds how long StartMosquitto and Restart wait for
// the broker to answer an MQTT CONNECT.
const mosquittoReadyTimeout = 10 * time.Second

// MosquittoOptions configures StartMosquitto. The zero value is a broker
// without persistence that accepts anonymous clients.
type MosquittoOptions struct {
	// Persistence makes the broker save retained messages, persistent
	// sessions (clean session = false) and their queued messages in its
	// temporary directory, every second (autosave_interval 1) and on a
	// graceful Stop, so that they survive Restart. After Kill, up to the
	// last second of changes may be lost, as with a real crash.
	Persistence bool

	// DenyAnonymous writes "allow_anonymous false" instead of
	// "allow_anonymous true". Combine it with Users, or with a TLS listener
	// that takes the client certificate as the identity.
	DenyAnonymous bool

	// Users (name → password) are written to a password_file with
	// mosquitto_passwd -b, as an administrator would; the broker then
	// checks the password of every client that sends a username.
	Users map[string]string

	// TLS adds a TLS listener on 127.0.0.1 (Mosquitto.TLSURL) beside the
	// plain one, which stays for the test's own clients.
	TLS *MosquittoTLS

	// ExtraConfig is appended verbatim, after the generated lines, to the
	// broker's configuration file: extra listeners (e.g. TLS, on a port from
	// FreePort), password_file, acl_file, log_type debug, limits, ...
	// Files it refers to can be placed in Mosquitto.Dir.
	ExtraConfig string
}

// MosquittoTLS is a TLS listener's settings (mosquitto.conf(5)); the files
// are PEM, made with NewCA in a test.
type MosquittoTLS struct {
	// CertFile and KeyFile are the broker's certificate and key.
	CertFile, KeyFile string
	// CAFile is the CA whose client certificates the broker accepts.
	CAFile string
	// RequireCertificate refuses clients without a certificate signed by
	// CAFile (require_certificate true).
	RequireCertificate bool
	// UseIdentityAsUsername makes the client certificate's common name the
	// client's username, with no password to check.
	UseIdentityAsUsername bool
}

// Mosquitto is a private Eclipse Mosquitto MQTT broker started by
// StartMosquitto. Its exported fields must not be modified.
type Mosquitto struct {
	// Addr is the plain MQTT listener's address, "127.0.0.1:PORT".
	Addr string
	// URL is the broker URL for MQTT clients, "tcp://127.0.0.1:PORT".
	URL string
	// Port is the plain MQTT listener's port.
	Port int
	// TLSURL is the TLS listener's URL, "ssl://127.0.0.1:PORT", and
	// TLSPort its port; both zero without MosquittoOptions.TLS.
	TLSURL  string
	TLSPort int
	// Dir is the broker's private directory (configuration, persistence
	// database, log); it is removed after the test.
	Dir string
	// ConfigPath is the configuration file the broker runs with.
	ConfigPath string
	// LogPath is the broker's log file (log_dest file, stdout and stderr).
	LogPath string

	bin  string
	opts MosquittoOptions

	mu   sync.Mutex
	proc *process // nil when stopped
}

// StartMosquitto starts a private mosquitto broker listening on
// 127.0.0.1 on a free port and waits until it accepts MQTT connections. It is
// stopped when the test and its subtests complete.
//
// The binary is $EDGED_MOSQUITTO if set, else "mosquitto" in $PATH, else
// /usr/sbin/mosquitto; if none exists the test fails (run `make setup`).
func StartMosquitto(t testing.TB, o MosquittoOptions) *Mosquitto {
	t.Helper()
	bin := findBinary(t, "mosquitto", "EDGED_MOSQUITTO", "mosquitto", "/usr/sbin/mosquitto")
	dir := t.TempDir()
	m := &Mosquitto{
		Dir:        dir,
		ConfigPath: filepath.Join(dir, "mosquitto.conf"),
		LogPath:    filepath.Join(dir, "mosquitto.log"),
		bin:        bin,
		opts:       o,
	}
	logTailOnFailure(t, "mosquitto", m.LogPath)
	t.Cleanup(m.Stop)
	if len(o.Users) > 0 {
		m.writePasswords(t)
	}

	for attempt := 1; ; attempt++ {
		m.setPort(FreePort(t))
		if o.TLS != nil {
			port := FreePort(t)
			for port == m.Port {
				port = FreePort(t)
			}
			m.TLSPort = port
			m.TLSURL = "ssl://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		}
		err := m.start()
		if err == nil {
			return m
		}
		// The port may have been taken between FreePort and the broker
		// binding it: try once more on another one.
		if attempt == 1 && errors.Is(err, errExited) {
			t.Logf("servicetest: mosquitto on port %d: %v; retrying on another port", m.Port, err)
			continue
		}
		t.Fatalf("servicetest: starting mosquitto: %v (log: %s)", err, m.LogPath)
	}
}

func (m *Mosquitto) setPort(port int) {
	m.Port = port
	m.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	m.URL = "tcp://" + m.Addr
}

// config renders the configuration file.
func (m *Mosquitto) config() string {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# generated by internal/servicetest\n")
	if os.Geteuid() == 0 {
		// Mosquitto started as root drops privileges to the "mosquitto"
		// user, which cannot write to our temporary directory.
		fmt.Fprintf(&b, "user root\n")
	}
	fmt.Fprintf(&b, "listener %d 127.0.0.1\n", m.Port)
	fmt.Fprintf(&b, "allow_anonymous %t\n", !m.opts.DenyAnonymous)
	fmt.Fprintf(&b, "set_tcp_nodelay true\n")
	if m.opts.Persistence {
		fmt.Fprintf(&b, "persistence true\n")
		fmt.Fprintf(&b, "persistence_location %s%c\n", m.Dir, filepath.Separator)
		fmt.Fprintf(&b, "persistence_file mosquitto.db\n")
		fmt.Fprintf(&b, "autosave_interval 1\n")
	} else {
		fmt.Fprintf(&b, "persistence false\n")
	}
	fmt.Fprintf(&b, "log_dest file %s\n", m.LogPath)
	for _, typ := range []string{"error", "warning", "notice", "information", "subscribe", "unsubscribe"} {
		fmt.Fprintf(&b, "log_type %s\n", typ)
	}
	fmt.Fprintf(&b, "connection_messages true\n")
	fmt.Fprintf(&b, "log_timestamp_format %%Y-%%m-%%dT%%H:%%M:%%S\n")
	if len(m.opts.Users) > 0 {
		fmt.Fprintf(&b, "password_file %s\n", m.passwordFile())
	}
	if m.opts.ExtraConfig != "" {
		fmt.Fprintf(&b, "# ExtraConfig\n%s\n", m.opts.ExtraConfig)
	}
	if tl := m.opts.TLS; tl != nil {
		// Listener settings follow their listener line: keep these last.
		fmt.Fprintf(&b, "# TLS\nlistener %d 127.0.0.1\n", m.TLSPort)
		fmt.Fprintf(&b, "certfile %s\nkeyfile %s\n", tl.CertFile, tl.KeyFile)
		if tl.CAFile != "" {
			fmt.Fprintf(&b, "cafile %s\n", tl.CAFile)
		}
		fmt.Fprintf(&b, "require_certificate %t\n", tl.RequireCertificate)
		fmt.Fprintf(&b, "use_identity_as_username %t\n", tl.UseIdentityAsUsername)
	}
	return b.String()
}

func (m *Mosquitto) passwordFile() string { return filepath.Join(m.Dir, "passwd") }

// writePasswords makes the password_file with mosquitto_passwd.
func (m *Mosquitto) writePasswords(t testing.TB) {
	t.Helper()
	bin := findBinary(t, "mosquitto_passwd", "EDGED_MOSQUITTO_PASSWD", "mosquitto_passwd", "/usr/bin/mosquitto_passwd")
	users := slices.Sorted(maps.Keys(m.opts.Users))
	for i, u := range users {
		args := []string{"-b", m.passwordFile(), u, m.opts.Users[u]}
		if i == 0 {
			args = append([]string{"-c"}, args...)
		}
		if out, err := exec.Command(bin, args...).CombinedOutput(); err != nil {
			t.Fatalf("servicetest: mosquitto_passwd for %s: %v\n%s", u, err, out)
		}
	}
}

// start writes the configuration, starts the broker and waits for it to
// accept connections. m.mu must be held or m not yet shared.
func (m *Mosquitto) start() error {
	if err := os.WriteFile(m.ConfigPath, []byte(m.config()), 0o644); err != nil {
		return err
	}
	p, err := startProcess("mosquitto", m.bin, []string{"-c", m.ConfigPath}, nil, m.Dir, m.LogPath)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(mosquittoReadyTimeout)
	for {
		if p.exited() {
			return p.exitError()
		}
		perr := mqttProbe(m.Addr, time.Second)
		if perr == nil && m.opts.TLS != nil {
			// Bound with the plain one; dialled to be sure.
			var c net.Conn
			if c, perr = net.DialTimeout("tcp", strings.TrimPrefix(m.TLSURL, "ssl://"), time.Second); perr == nil {
				c.Close()
			}
		}
		if perr == nil {
			m.proc = p
			return nil
		}
		if time.Now().After(deadline) {
			p.kill()
			return fmt.Errorf("mosquitto (pid %d) not accepting MQTT connections on %s after %v: %v", p.pid(), m.Addr, mosquittoReadyTimeout, perr)
		}
		select {
		case <-p.done:
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// mqttProbe connects to addr and performs an MQTT 3.1.1 CONNECT. Any CONNACK
// counts as ready, including a refusal (e.g. bad credentials when anonymous
// clients are denied).
func mqttProbe(addr string, timeout time.Duration) error {
	conn, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(timeout))
	const clientID = "servicetest-ready-probe"
	pkt := []byte{
		0x10, byte(10 + 2 + len(clientID)), // CONNECT, remaining length
		0x00, 0x04, 'M', 'Q', 'T', 'T', // protocol name
		0x04,       // protocol level 4 (MQTT 3.1.1)
		0x02,       // flags: clean session
		0x00, 0x0a, // keep alive 10 s
		0x00, byte(len(clientID)), // client identifier
	}
	pkt = append(pkt, clientID...)
	if _, err := conn.Write(pkt); err != nil {
		return err
	}
	var ack [4]byte
	if _, err := io.ReadFull(conn, ack[:]); err != nil {
		return fmt.Errorf("reading CONNACK: %w", err)
	}
	if ack[0] != 0x20 || ack[1] != 0x02 {
		return fmt.Errorf("unexpected reply to CONNECT: % x", ack)
	}
	_, _ = conn.Write([]byte{0xe0, 0x00}) // DISCONNECT
	return nil
}

// PID returns the broker's process id, or 0 if it is not running.
func (m *Mosquitto) PID() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.proc == nil || m.proc.exited() {
		return 0
	}
	return m.proc.pid()
}

// Stop stops the broker gracefully: SIGTERM, then SIGKILL if it has not
// exited within 10 s. With Persistence, mosquitto saves its state on the way
// out. Stop is idempotent and returns once the process has been reaped.
func (m *Mosquitto) Stop() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.proc != nil {
		m.proc.stop(stopGrace)
		m.proc = nil
	}
}

// Kill simulates a crash: it sends SIGKILL and returns once the process has
// been reaped. It is idempotent.
func (m *Mosquitto) Kill() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.proc != nil {
		m.proc.kill()
		m.proc = nil
	}
}

// Restart stops the broker if it is running (as Stop does) and starts it
// again with the same configuration: same port, same persistence directory.
// It returns once the broker accepts connections; on failure it fails t.
func (m *Mosquitto) Restart(t testing.TB) {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.proc != nil {
		m.proc.stop(stopGrace)
		m.proc = nil
	}
	if err := m.start(); err != nil {
		t.Fatalf("servicetest: restarting mosquitto on %s: %v (log: %s)", m.Addr, err, m.LogPath)
	}
}
