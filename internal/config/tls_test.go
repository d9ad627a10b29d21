package config

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edged-io/edged/internal/servicetest"
)

// TestMQTTTLSConfig: mqtt.tls's files become the clients' TLS settings:
// only the CA of ca_file is trusted, the client certificate is loaded,
// server_name is kept; the key can be a systemd credential.
func TestMQTTTLSConfig(t *testing.T) {
	ca := servicetest.NewCA(t, "edged")
	client := ca.Client(t, "edged-pi")
	yaml := fmt.Sprintf("mqtt:\n  broker: ssl://10.0.0.2:8883\n  tls:\n    ca_file: %s\n    cert_file: %s\n    key_file: %s\n    server_name: broker.lan\n",
		ca.CertFile, client.CertFile, client.KeyFile)
	c, err := Parse("x.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	tc, err := c.MQTTTLSConfig()
	if err != nil {
		t.Fatal(err)
	}
	if tc.ServerName != "broker.lan" || len(tc.Certificates) != 1 || tc.RootCAs == nil || tc.InsecureSkipVerify {
		t.Fatalf("TLS config: server name %q, %d certificates, roots %v", tc.ServerName, len(tc.Certificates), tc.RootCAs)
	}
	if _, err := ca.Cert.Verify(x509.VerifyOptions{Roots: tc.RootCAs}); err != nil {
		t.Errorf("the CA of ca_file is not trusted: %v", err)
	}

	// The key as a systemd credential (a name without a slash).
	creds := t.TempDir()
	key, _ := os.ReadFile(client.KeyFile)
	os.WriteFile(filepath.Join(creds, "mqtt-key"), key, 0o600)
	t.Setenv("CREDENTIALS_DIRECTORY", creds)
	c, err = Parse("x.yaml", []byte(fmt.Sprintf("mqtt: {broker: \"mqtts://b:8883\", tls: {cert_file: %s, key_file: mqtt-key}}\n", client.CertFile)))
	if err != nil {
		t.Fatal(err)
	}
	if tc, err := c.MQTTTLSConfig(); err != nil || len(tc.Certificates) != 1 || tc.RootCAs != nil {
		t.Fatalf("key from a credential: %v (roots %v: want the system's)", err, tc)
	}

	// No mqtt.tls: nil, the system's roots for a TLS broker.
	c, _ = Parse("x.yaml", []byte("mqtt: {broker: \"ssl://b:8883\"}\n"))
	if tc, err := c.MQTTTLSConfig(); tc != nil || err != nil {
		t.Fatalf("without mqtt.tls: %v, %v", tc, err)
	}
}

// TestMQTTTLSErrors: every mistake is an error naming the file and line,
// the key, and the file at fault, and none shows what a key file holds.
func TestMQTTTLSErrors(t *testing.T) {
	ca := servicetest.NewCA(t, "edged")
	client, other := ca.Client(t, "edged-pi"), ca.Client(t, "other")
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	keyPEM, _ := os.ReadFile(client.KeyFile)
	block, _ := pem.Decode(keyPEM)
	secret := strings.Split(string(keyPEM), "\n")[1] // a line of the key's base64
	garbage := write("garbage.pem", "not a certificate\n")
	broken := write("broken.pem", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
	keyAsCA := write("key-as-ca.pem", string(keyPEM))
	encrypted := write("encrypted.pem", string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY",
		Headers: map[string]string{"Proc-Type": "4,ENCRYPTED", "DEK-Info": "AES-128-CBC,00000000000000000000000000000000"}, Bytes: block.Bytes})))
	missing := filepath.Join(dir, "missing.pem")

	load := func(tls string) error {
		c, err := Parse("edged.yaml", []byte("device: pi\nmqtt:\n  broker: ssl://127.0.0.1:8883\n  tls:\n"+tls))
		if err != nil {
			return err
		}
		_, err = c.MQTTTLSConfig()
		return err
	}
	for _, tc := range []struct {
		name, tls string
		want      []string
	}{
		{"cert without key", "    cert_file: " + client.CertFile + "\n", []string{"edged.yaml:5: mqtt.tls.cert_file: needs mqtt.tls.key_file"}},
		{"key without cert", "    key_file: " + client.KeyFile + "\n", []string{"edged.yaml:5: mqtt.tls.key_file: needs mqtt.tls.cert_file"}},
		{"empty key", "    cert_file: " + client.CertFile + "\n    key_file: \"\"\n", []string{"edged.yaml:6: mqtt.tls.key_file: is empty"}},
		{"missing CA file", "    ca_file: " + missing + "\n", []string{"edged.yaml:5: mqtt.tls.ca_file:", missing, "no such file"}},
		{"no PEM in the CA file", "    ca_file: " + garbage + "\n", []string{"edged.yaml:5: mqtt.tls.ca_file:", garbage, "no PEM certificate"}},
		{"broken certificate", "    ca_file: " + broken + "\n", []string{"edged.yaml:5: mqtt.tls.ca_file:", broken, "not a valid certificate"}},
		{"a key as the CA", "    ca_file: " + keyAsCA + "\n", []string{"edged.yaml:5: mqtt.tls.ca_file:", keyAsCA, "holds a private key"}},
		{"a key as the certificate", "    cert_file: " + keyAsCA + "\n    key_file: " + client.KeyFile + "\n", []string{"edged.yaml:5: mqtt.tls.cert_file:", keyAsCA}},
		{"missing key", "    cert_file: " + client.CertFile + "\n    key_file: " + missing + "\n", []string{"edged.yaml:6: mqtt.tls.key_file:", missing}},
		{"no PEM in the key", "    cert_file: " + client.CertFile + "\n    key_file: " + garbage + "\n", []string{"edged.yaml:6: mqtt.tls.key_file:", garbage, "no PEM private key"}},
		{"a certificate as the key", "    cert_file: " + client.CertFile + "\n    key_file: " + client.CertFile + "\n", []string{"edged.yaml:6: mqtt.tls.key_file:", client.CertFile}},
		{"encrypted key", "    cert_file: " + client.CertFile + "\n    key_file: " + encrypted + "\n", []string{"edged.yaml:6: mqtt.tls.key_file:", encrypted, "encrypted"}},
		{"key of another certificate", "    cert_file: " + other.CertFile + "\n    key_file: " + client.KeyFile + "\n", []string{"edged.yaml:6: mqtt.tls.key_file:", client.KeyFile, "is not the key of the certificate in " + other.CertFile}},
	} {
		err := load(tc.tls)
		if err == nil {
			t.Errorf("%s: accepted", tc.name)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %q does not say %q", tc.name, err, w)
			}
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("%s: the error shows file contents: %q", tc.name, err)
		}
	}
	for _, tc := range []struct{ name, yaml, want string }{
		{"plain broker", "mqtt:\n  broker: tcp://10.0.0.2:1883\n  tls: {ca_file: " + ca.CertFile + "}\n", "x.yaml:3: mqtt.tls: is set but mqtt.broker \"tcp://10.0.0.2:1883\" does not use TLS"},
		{"embedded broker", "mqtt:\n  tls: {ca_file: " + ca.CertFile + "}\n", "x.yaml:2: mqtt.tls: is set but mqtt.broker is not"},
		{"unknown key", "mqtt:\n  broker: ssl://b:8883\n  tls: {insecure_skip_verify: true}\n", "x.yaml:3: field insecure_skip_verify not found"},
	} {
		if _, err := Parse("x.yaml", []byte(tc.yaml)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v; want %q", tc.name, err, tc.want)
		}
	}
	// Redacted shows the paths, never what they hold.
	c, err := Parse("x.yaml", []byte(fmt.Sprintf("mqtt: {broker: \"ssl://b:8883\", tls: {cert_file: %s, key_file: %s}}\n", client.CertFile, client.KeyFile)))
	if err != nil {
		t.Fatal(err)
	}
	if r := c.Redacted(); !strings.Contains(r, "key_file: "+client.KeyFile) || strings.Contains(r, secret) {
		t.Errorf("Redacted:\n%s", r)
	}
}
