package reconcile

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestReadToken(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	flagFile := write("flag", "from-flag\n")
	envFile := write("env", "from-env")
	credDir := filepath.Join(dir, "creds")
	os.Mkdir(credDir, 0o700)
	os.WriteFile(filepath.Join(credDir, "influx-token"), []byte("from-systemd\n"), 0o600)

	t.Setenv("EDGED_RECONCILE_TOKEN_FILE", envFile)
	t.Setenv("CREDENTIALS_DIRECTORY", credDir)
	for _, tc := range []struct {
		file, env, creds, want string
	}{
		{flagFile, envFile, credDir, "from-flag"},
		{"", envFile, credDir, "from-env"},
		{"", "", credDir, "from-systemd"},
		{"", "", dir, ""}, // a credentials directory without ours
		{"", "", "", ""},
	} {
		t.Setenv("EDGED_RECONCILE_TOKEN_FILE", tc.env)
		t.Setenv("CREDENTIALS_DIRECTORY", tc.creds)
		got, err := readToken(tc.file)
		if err != nil || got != tc.want {
			t.Errorf("%+v: %q, %v", tc, got, err)
		}
	}
	t.Setenv("EDGED_RECONCILE_TOKEN_FILE", "")
	secret := write("two-lines", "s3cret\nmore\n")
	if _, err := readToken(secret); !errors.Is(err, errUsage) || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("two-line token file: %v", err)
	}
	if _, err := readToken(filepath.Join(dir, "missing")); !errors.Is(err, errUsage) {
		t.Errorf("missing token file: %v", err)
	}
}

func TestMainUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		out  string
	}{
		{nil, ExitUsage, ""},
		{[]string{"help"}, ExitOK, "edged-reconcile run"},
		{[]string{"version"}, ExitOK, "edged-reconcile "},
		{[]string{"run", "-h"}, ExitOK, "--parallel N"},
		{[]string{"query", "-h"}, ExitOK, "--window"},
		{[]string{"run"}, ExitUsage, ""}, // no URL
		{[]string{"run", "--url", "ftp://x", "--bucket", "b"}, ExitUsage, ""},
		{[]string{"run", "--url", "http://x", "--bucket", "b", "--token=abc"}, ExitUsage, ""},
		{[]string{"run", "--url", "http://x", "--bucket", "b", "--parallel", "0", "--config", "/nonexistent"}, ExitUsage, ""},
		{[]string{"run", "extra"}, ExitUsage, ""},
		{[]string{"query", "--device", "d", "--series", "s", "--window", "soon", "--from", "-1h"}, ExitUsage, ""},
		{[]string{"query", "--device", "d", "--series", "s", "--window", "1m", "--from", "yesterday"}, ExitUsage, ""},
	} {
		var stdout, stderr bytes.Buffer
		code := Main(context.Background(), tc.args, &stdout, &stderr)
		if code != tc.code || !strings.Contains(stdout.String(), tc.out) {
			t.Errorf("%q: exit %d, want %d; stdout %q stderr %q", tc.args, code, tc.code, stdout.String(), stderr.String())
		}
		if strings.Contains(stdout.String()+stderr.String(), "abc") {
			t.Errorf("%q: the token shows in the output", tc.args)
		}
	}
}

func TestProgressLine(t *testing.T) {
	got := progressLine(500, 2000, 1, 3, 10*time.Second)
	for _, want := range []string{"500/2000 windows", "(25.0%)", "50 windows/s", "devices 1/3", "ETA 30s"} {
		if !strings.Contains(got, want) {
			t.Errorf("progress line %q lacks %q", got, want)
		}
	}
}

func TestParseTime(t *testing.T) {
	now := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"now":                  now,
		"-1h":                  now.Add(-time.Hour),
		"2024-03-01T10:00:00Z": now.Add(-2 * time.Hour),
	} {
		if got, err := parseTime(in, now); err != nil || !got.Equal(want) {
			t.Errorf("parseTime(%q) = %v, %v", in, got, err)
		}
	}
}
