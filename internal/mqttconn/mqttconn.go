// Package mqttconn is what edged's MQTT clients share: where the broker
// is, who edged is to it (client id, username and password, a client
// certificate), whether and how it trusts the broker (TLS), and the cap on
// the reconnect backoff. The ingest source (sensors), the alert publisher
// (alerts/notify) and the window output (internal/mqttout) each take an
// Options and build their paho client from ClientOptions, then add what is
// theirs (session, acknowledgements, will, handlers).
//
// # TLS
//
// A broker URL with the scheme ssl://, tls://, mqtts:// or wss:// is
// reached over TLS: with Options.TLS when set (the CAs to trust, a client
// certificate, the server name), else with the system's roots. The
// broker's certificate is always verified; there is deliberately no way to
// skip that. TLS settings with a plain scheme (tcp://, mqtt://, ws://) are
// an error, not a silent downgrade.
//
// # Failed connections
//
// paho retries a connection that fails quietly. ClientOptions, given a
// logger, reports failed attempts: the first of a run, and each change of
// reason, with a hint when the cause is one an operator must fix (a CA
// edged does not trust, a refused password, a missing client
// certificate); repeats go to debug. Passwords and keys are never logged:
// LogValue shows whether a password is set, not what it is.
package mqttconn

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"
)

// DefaultMaxReconnectInterval is the reconnect cap when Options leaves it 0.
const DefaultMaxReconnectInterval = 30 * time.Second

// Options say how an MQTT client reaches and authenticates to the broker.
type Options struct {
	// Broker is the broker URL: tcp://host:1883; ssl://, tls:// or
	// mqtts://host:8883 for TLS; ws:// or wss:// for websockets. Required.
	Broker string
	// ClientID must be fixed across restarts where the client keeps a
	// persistent session, and differ between edged's clients. Required.
	ClientID string
	// Username and Password authenticate to the broker. The password comes
	// from a file or a systemd credential and is never logged.
	Username, Password string
	// TLS configures TLS for a TLS broker URL: the CAs trusted (RootCAs),
	// the client certificate, the server name. nil: the system's roots and
	// no client certificate. It must be nil for a plain URL.
	TLS *tls.Config
	// MaxReconnectInterval caps the reconnect backoff. Default 30s.
	MaxReconnectInterval time.Duration
}

// Secure reports whether the broker URL's scheme means TLS.
func Secure(broker string) bool {
	scheme, _, _ := strings.Cut(broker, "://")
	switch strings.ToLower(scheme) {
	case "ssl", "tls", "mqtts", "wss", "mqtt+ssl", "tcps":
		return true
	}
	return false
}

// Validate reports the first problem with the options.
func (o Options) Validate() error {
	if o.Broker == "" {
		return errors.New("mqttconn: no broker URL")
	}
	u, err := url.Parse(o.Broker)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return fmt.Errorf("mqttconn: broker %q is not a URL like tcp://host:1883 or ssl://host:8883", o.Broker)
	}
	switch strings.ToLower(u.Scheme) {
	case "tcp", "mqtt", "ws", "ssl", "tls", "mqtts", "wss", "mqtt+ssl", "tcps":
	default:
		return fmt.Errorf("mqttconn: broker %q: unknown scheme %q (tcp, mqtt, ssl, tls, mqtts, ws, wss)", o.Broker, u.Scheme)
	}
	if o.ClientID == "" {
		return errors.New("mqttconn: a client id is required")
	}
	if o.TLS != nil && !Secure(o.Broker) {
		return fmt.Errorf("mqttconn: TLS settings given for %q, which is not a TLS URL: use ssl://, tls:// or mqtts://", o.Broker)
	}
	if o.TLS != nil && o.TLS.InsecureSkipVerify {
		return errors.New("mqttconn: TLS without verifying the broker's certificate is not supported")
	}
	if o.MaxReconnectInterval < 0 {
		return errors.New("mqttconn: the reconnect interval must not be negative")
	}
	return nil
}

// LogValue shows the options without the password or key.
func (o Options) LogValue() slog.Value {
	attrs := []slog.Attr{slog.String("broker", o.Broker), slog.String("client_id", o.ClientID),
		slog.String("username", o.Username), slog.Bool("password_set", o.Password != ""), slog.Bool("tls", Secure(o.Broker))}
	if o.TLS != nil {
		attrs = append(attrs, slog.Bool("client_certificate", len(o.TLS.Certificates) > 0), slog.Bool("own_ca", o.TLS.RootCAs != nil))
	}
	return slog.GroupValue(attrs...)
}

// String shows the options as LogValue does: fmt's %v and %+v never
// print the password or the key of the client certificate.
func (o Options) String() string {
	return fmt.Sprintf("{broker=%s client_id=%s username=%q password_set=%t tls=%t client_certificate=%t}", o.Broker, o.ClientID,
		o.Username, o.Password != "", Secure(o.Broker), o.TLS != nil && len(o.TLS.Certificates) > 0)
}

// GoString is String for %#v.
func (o Options) GoString() string { return "mqttconn.Options" + o.String() }

// ClientOptions returns paho options with the broker, the client id, the
// credentials, TLS and the reconnect cap set; the caller adds the rest. A
// non-nil log receives failed connection attempts (see the package doc):
// pass one when paho retries by itself (ConnectRetry, AutoReconnect), nil
// when the caller sees and reports every attempt's error.
func (o Options) ClientOptions(log *slog.Logger) *mqtt.ClientOptions {
	co := mqtt.NewClientOptions().
		AddBroker(o.Broker).
		SetClientID(o.ClientID).
		SetUsername(o.Username).
		SetPassword(o.Password)
	if o.TLS != nil {
		co.SetTLSConfig(o.TLS.Clone())
	} else if Secure(o.Broker) {
		co.SetTLSConfig(&tls.Config{MinVersion: tls.VersionTLS12})
	}
	reconnect := o.MaxReconnectInterval
	if reconnect == 0 {
		reconnect = DefaultMaxReconnectInterval
	}
	co.SetMaxReconnectInterval(reconnect)
	if log != nil {
		f := &failures{log: log, broker: o.Broker}
		co.SetConnectionNotificationHandler(f.notify)
		if tc := co.TLSConfig; tc != nil && tc.GetClientCertificate == nil {
			// A broker that rejects the client certificate (or its
			// absence) drops the connection after a TLS 1.3 handshake: the
			// client then sees a bare reset. Noting what the handshake
			// asked and sent explains it. The choice is crypto/tls's own:
			// the first certificate the request accepts, else none.
			certs := tc.Certificates
			tc.GetClientCertificate = func(cri *tls.CertificateRequestInfo) (*tls.Certificate, error) {
				for i := range certs {
					if cri.SupportsCertificate(&certs[i]) == nil {
						f.handshake.Store(sentCert)
						return &certs[i], nil
					}
				}
				f.handshake.Store(noCertSent)
				return &tls.Certificate{}, nil
			}
			f.haveCert = len(certs) > 0
		}
	}
	return co
}

// What the broker's certificate request got in an attempt's handshake.
const (
	noRequest int32 = iota
	sentCert
	noCertSent
)

// failures logs a client's failed connection attempts.
type failures struct {
	log       *slog.Logger
	broker    string
	haveCert  bool         // a client certificate is configured
	handshake atomic.Int32 // noRequest, sentCert or noCertSent in the current attempt

	mu   sync.Mutex
	n    int    // failed attempts since the last connection
	last string // the last failure's hint, or its message with addresses blanked
}

// addr matches the host:port pairs of network errors (the local port
// changes with every attempt).
var addr = regexp.MustCompile(`(\d{1,3}(\.\d{1,3}){3}|\[[0-9a-fA-F:.]+\]):\d+`)

func (f *failures) notify(_ mqtt.Client, n mqtt.ConnectionNotification) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch n := n.(type) {
	case mqtt.ConnectionNotificationConnecting:
		f.handshake.Store(noRequest)
	case mqtt.ConnectionNotificationConnected:
		if f.n > 0 {
			f.log.Info("mqtt: connected after failed attempts", "broker", f.broker, "failed_attempts", f.n)
		}
		f.n, f.last = 0, ""
	case mqtt.ConnectionNotificationFailed:
		f.n++
		msg := n.Reason.Error()
		hint := Hint(n.Reason)
		if hint == "" || strings.HasPrefix(hint, hintClientCert) {
			// A refused client certificate shows as an alert or as a
			// reset, by timing: one hint for both.
			switch f.handshake.Load() {
			case noCertSent:
				if f.haveCert {
					hint = "the broker asked for a client certificate from a CA it trusts, and mqtt.tls.cert_file is not one: use a certificate its CA signed"
				} else {
					hint = "the broker asked for a client certificate and edged has none: set mqtt.tls.cert_file and mqtt.tls.key_file"
				}
			case sentCert:
				hint = "the broker refused the connection after edged sent its client certificate (mqtt.tls.cert_file): is it signed by a CA the broker trusts, and still valid?"
			}
		}
		key := hint // the same cause shows as several messages (an alert, a reset)
		if key == "" {
			key = addr.ReplaceAllString(msg, "ADDR")
		}
		if key == f.last {
			f.log.Debug("mqtt: connection attempt failed again", "broker", f.broker, "attempt", f.n, "err", msg)
			return
		}
		f.last = key
		if hint != "" {
			f.log.Error("mqtt: cannot connect to the broker; retrying", "broker", f.broker, "err", msg, "hint", hint)
		} else {
			f.log.Warn("mqtt: cannot connect to the broker; retrying", "broker", f.broker, "err", msg)
		}
	}
}

const hintClientCert = "the broker wants a client certificate signed by a CA it trusts"

// Hint says what to fix for a failed connection attempt whose cause will
// not go away by itself, or "" (the broker is down, the network is cut:
// retrying is the cure).
func Hint(err error) string {
	if err == nil {
		return ""
	}
	var (
		unknownCA x509.UnknownAuthorityError
		hostname  x509.HostnameError
		invalid   x509.CertificateInvalidError
		record    tls.RecordHeaderError
	)
	msg := err.Error()
	switch {
	case errors.As(err, &unknownCA):
		return "the broker's certificate is signed by a CA edged does not trust: name that CA's certificate in mqtt.tls.ca_file"
	case errors.As(err, &hostname):
		return "the broker's certificate is not issued for the host in mqtt.broker: use a name it carries, or set mqtt.tls.server_name"
	case errors.As(err, &invalid):
		return "the broker's certificate is not valid now (expired or not yet valid; is the clock right?)"
	case errors.As(err, &record):
		return "the broker does not speak TLS on this port: use its TLS port, or tcp:// for a plain one"
	case errors.Is(err, packets.ErrorRefusedBadUsernameOrPassword), errors.Is(err, packets.ErrorRefusedNotAuthorised):
		return "the broker refused edged's credentials: check mqtt.username and the password in mqtt.password_file (or the client certificate, mqtt.tls.cert_file)"
	case errors.Is(err, packets.ErrorRefusedIDRejected):
		return "the broker rejected the client id (mqtt.client_id)"
	case strings.Contains(msg, "tls: expired certificate"):
		return "the broker refused edged's client certificate as expired: renew mqtt.tls.cert_file"
	case strings.Contains(msg, "tls: certificate required"), strings.Contains(msg, "tls: bad certificate"),
		strings.Contains(msg, "tls: unknown certificate authority"), strings.Contains(msg, "tls: handshake failure"):
		// The broker's TLS alert: it wants a client certificate it trusts.
		return hintClientCert + ": set mqtt.tls.cert_file and mqtt.tls.key_file"
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "remote error" {
		return "the broker ended the TLS handshake: check mqtt.tls (client certificate, TLS versions) against the broker's listener"
	}
	return ""
}
