package config

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"
)

// MQTTTLS configures TLS to the broker. The files are PEM. No setting
// turns off the verification of the broker's certificate.
type MQTTTLS struct {
	// CAFile holds the CA certificates to trust for the broker's
	// certificate, instead of the system's roots.
	CAFile string `yaml:"ca_file,omitempty"`
	// CertFile is edged's client certificate (a chain: leaf first) and
	// KeyFile its private key (a file, or a systemd credential name; not
	// encrypted). Both or neither.
	CertFile string `yaml:"cert_file,omitempty"`
	KeyFile  string `yaml:"key_file,omitempty"`
	// ServerName is the name the broker's certificate must carry, when
	// mqtt.broker names the broker otherwise (by IP address, say).
	ServerName string `yaml:"server_name,omitempty"`
}

func (t MQTTTLS) set() bool { return t != MQTTTLS{} }

// tlsSchemes are the broker URL schemes that mean TLS.
var tlsSchemes = []string{"ssl://", "tls://", "mqtts://", "wss://"}

// validateMQTTTLS checks mqtt.tls without reading its files (see
// MQTTTLSConfig).
func (c *Config) validateMQTTTLS(add func(key, format string, args ...any)) {
	t := c.MQTT.TLS
	if !t.set() && c.lines["mqtt.tls"] == 0 {
		return
	}
	switch {
	case c.MQTT.Broker == "":
		add("mqtt.tls", "is set but mqtt.broker is not: the embedded broker has no TLS; set mqtt.broker to ssl://host:8883")
	case !hasScheme(c.MQTT.Broker, tlsSchemes...):
		add("mqtt.tls", "is set but mqtt.broker %q does not use TLS: use ssl://, tls:// or mqtts://host:8883", c.MQTT.Broker)
	}
	if t.CertFile != "" && t.KeyFile == "" {
		add("mqtt.tls.cert_file", "needs mqtt.tls.key_file: the client certificate's private key")
	}
	if t.KeyFile != "" && t.CertFile == "" {
		add("mqtt.tls.key_file", "needs mqtt.tls.cert_file: the client certificate of this key")
	}
	for _, k := range []struct{ key, file string }{{"mqtt.tls.ca_file", t.CAFile},
		{"mqtt.tls.cert_file", t.CertFile}, {"mqtt.tls.key_file", t.KeyFile}} {
		if k.file == "" && c.lines[k.key] > 0 {
			add(k.key, "is empty: name the file, or remove the key")
		}
	}
}

// MQTTTLSConfig reads mqtt.tls's files and returns the TLS configuration
// of edged's MQTT clients: nil when mqtt.tls is not set (a TLS broker is
// then verified against the system's roots). Errors name the config line,
// the key and the file, never the files' contents. `edged check` and the
// daemon's start call it.
func (c *Config) MQTTTLSConfig() (*tls.Config, error) {
	t := c.MQTT.TLS
	if !t.set() {
		return nil, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName}
	var errs []error
	if t.CAFile != "" {
		certs, err := readCertificates(t.CAFile)
		if err != nil {
			errs = append(errs, c.errAt("mqtt.tls.ca_file", "%v", err))
		} else {
			tc.RootCAs = x509.NewCertPool()
			for _, cert := range certs {
				tc.RootCAs.AddCert(cert)
			}
		}
	}
	if t.CertFile != "" && t.KeyFile != "" {
		pair, key, err := c.clientCertificate(t)
		if err != nil {
			errs = append(errs, c.errAt(key, "%v", err))
		} else {
			tc.Certificates = []tls.Certificate{pair}
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return tc, nil
}

// clientCertificate loads the certificate and its key; on error it also
// says which key of the config is at fault.
func (c *Config) clientCertificate(t MQTTTLS) (tls.Certificate, string, error) {
	if _, err := readCertificates(t.CertFile); err != nil {
		return tls.Certificate{}, "mqtt.tls.cert_file", err
	}
	certPEM, err := os.ReadFile(t.CertFile)
	if err != nil {
		return tls.Certificate{}, "mqtt.tls.cert_file", err
	}
	path := secretPath(t.KeyFile)
	keyPEM, err := os.ReadFile(path)
	if err != nil {
		return tls.Certificate{}, "mqtt.tls.key_file", err
	}
	if err := checkKeyPEM(path, keyPEM); err != nil {
		return tls.Certificate{}, "mqtt.tls.key_file", err
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		// crypto/tls's messages name block types, never bytes.
		msg := strings.TrimPrefix(err.Error(), "tls: ")
		if strings.Contains(msg, "does not match") {
			return tls.Certificate{}, "mqtt.tls.key_file", fmt.Errorf("%s is not the key of the certificate in %s", path, t.CertFile)
		}
		return tls.Certificate{}, "mqtt.tls.key_file", fmt.Errorf("%s: %s", path, msg)
	}
	return pair, "", nil
}

// readCertificates parses every certificate of a PEM file; a file with
// none, a block that does not parse or a private key is an error.
func readCertificates(path string) ([]*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var certs []*x509.Certificate
	for n := 1; ; n++ {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			break
		}
		switch {
		case block.Type == "CERTIFICATE":
			cert, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("%s: PEM block %d is not a valid certificate: %v", path, n, err)
			}
			certs = append(certs, cert)
		case strings.Contains(block.Type, "PRIVATE KEY"):
			return nil, fmt.Errorf("%s holds a private key, not a certificate: the key goes in mqtt.tls.key_file, in a file only edged can read", path)
		default:
			return nil, fmt.Errorf("%s: PEM block %d is a %q, not a CERTIFICATE", path, n, block.Type)
		}
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("%s holds no PEM certificate (-----BEGIN CERTIFICATE-----)", path)
	}
	return certs, nil
}

// checkKeyPEM reports a key file that crypto/tls would refuse with a
// vaguer message: no PEM at all, or an encrypted key.
func checkKeyPEM(path string, b []byte) error {
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			return fmt.Errorf("%s holds no PEM private key (-----BEGIN PRIVATE KEY-----)", path)
		}
		if !strings.Contains(block.Type, "PRIVATE KEY") {
			continue
		}
		if block.Type == "ENCRYPTED PRIVATE KEY" || strings.Contains(block.Headers["Proc-Type"], "ENCRYPTED") {
			return fmt.Errorf("%s is encrypted with a passphrase: edged needs it unencrypted (protect it by file permissions or a systemd credential)", path)
		}
		return nil
	}
}
