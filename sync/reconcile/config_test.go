package reconcile

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestExampleConfig(t *testing.T) {
	c, err := LoadConfig(filepath.Join("..", "..", "configs", "reconcile.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Influx.URL == "" || c.Influx.Bucket != "edged/autogen" || c.Influx.TokenFile == "" ||
		time.Duration(c.Influx.Timeout) != 2*time.Minute || c.Run.Parallel != 4 ||
		time.Duration(c.Run.ChunkSpan) != 3*time.Hour || c.Run.Progress == nil || time.Duration(*c.Run.Progress) != 5*time.Second || time.Duration(c.Run.Timeout) != 30*time.Minute {
		t.Fatalf("unexpected example config: %+v", c)
	}
	o := Options{URL: c.Influx.URL, Bucket: c.Influx.Bucket, Parallel: c.Run.Parallel, ChunkSpan: time.Duration(c.Run.ChunkSpan)}
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestConfigErrorsNameFileAndLine(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ text, want string }{
		{"influx:\n  url: x\n  tokn: y\n", ":3: field tokn not found"},
		{"run:\n  timeout: soon\n", ":2: \"soon\" is not a duration"},
		{"run:\n  parallel: -1\n", "run.parallel -1 is negative"},
		{"influx: [\n", ":1"},
	} {
		p := filepath.Join(dir, "c.yaml")
		if err := os.WriteFile(p, []byte(tc.text), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := LoadConfig(p)
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want ErrConfig naming %s and %q", tc.text, err, p, tc.want)
		}
	}
	p := filepath.Join(dir, "empty.yaml")
	os.WriteFile(p, nil, 0o600)
	if _, err := LoadConfig(p); err != nil {
		t.Errorf("empty config: %v", err)
	}
}

func TestNegativeDurationsRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.yaml")
	if err := os.WriteFile(path, []byte("run:\n  timeout: -5s\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadConfig(path); err == nil || !strings.Contains(err.Error(), "run.timeout -5s is negative") {
		t.Fatalf("a negative timeout: %v", err)
	}
}
