package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edged-io/edged/wal"
)

func run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Main(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestWALCommandsOnAHealthyLog(t *testing.T) {
	dir := t.TempDir()
	l, err := wal.Open(wal.Options{Dir: walDir(dir), SegmentSize: 512})
	if err != nil {
		t.Fatal(err)
	}
	recs := [][]byte{[]byte(`{"series":"a","value":1.5}`), []byte("plain text"), {0xff, 0xfe, 0}}
	for i := range 60 {
		if _, err := l.Append(recs[i%3]); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l, _ = wal.Open(wal.Options{Dir: walDir(dir)})
	if err := l.SetCursor("shipper", 40); err != nil {
		t.Fatal(err)
	}
	l.Close()

	code, out, _ := run(t, "wal", "verify", "--data-dir", dir)
	if code != ExitOK || !strings.Contains(out, "60 records") || !strings.Contains(out, "OK") {
		t.Fatalf("verify: %d %q", code, out)
	}
	code, out, _ = run(t, "wal", "stats", "--data-dir", dir)
	if code != ExitOK || !strings.Contains(out, "records 1..60") || !strings.Contains(out, "cursor shipper") || !strings.Contains(out, "lag 20") {
		t.Fatalf("stats: %d %q", code, out)
	}
	code, out, _ = run(t, "wal", "stats", "--json", "--data-dir", dir)
	var st wal.Stats
	if code != ExitOK || json.Unmarshal([]byte(out), &st) != nil || st.LastLSN != 60 || st.Cursors["shipper"] != 40 {
		t.Fatalf("stats --json: %d %q", code, out)
	}
	code, out, _ = run(t, "wal", "dump", "--data-dir", dir, "--from", "58")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != ExitOK || len(lines) != 3 {
		t.Fatalf("dump --from 58: %d %q", code, out)
	}
	want := []string{`{"lsn":58,"size":26,"data":{"series":"a","value":1.5}}`, `{"lsn":59,"size":10,"text":"plain text"}`, `{"lsn":60,"size":3,"base64":"//4A"}`}
	for i, w := range want {
		if lines[i] != w {
			t.Errorf("dump line %d = %s, want %s", i, lines[i], w)
		}
	}
}

func TestWALCommandsReportCorruptionWithoutRepairing(t *testing.T) {
	dir := t.TempDir()
	l, err := wal.Open(wal.Options{Dir: walDir(dir), SegmentSize: 256})
	if err != nil {
		t.Fatal(err)
	}
	for range 40 {
		if _, err := l.Append([]byte("0123456789abcdef0123456789")); err != nil {
			t.Fatal(err)
		}
		l.Close() // one batch per open: several segments
		l, _ = wal.Open(wal.Options{Dir: walDir(dir), SegmentSize: 256})
	}
	l.Close()
	segs, _ := filepath.Glob(filepath.Join(walDir(dir), "*.wal"))
	if len(segs) < 3 {
		t.Fatalf("want several segments, got %d", len(segs))
	}
	b, _ := os.ReadFile(segs[0])
	b[len(b)-5] ^= 0x40
	os.WriteFile(segs[0], b, 0o640)

	code, out, _ := run(t, "wal", "verify", "--data-dir", dir)
	if code != ExitFailure || !strings.Contains(out, "CORRUPT") {
		t.Fatalf("verify on a corrupt log: %d %q", code, out)
	}
	if after, _ := os.ReadFile(segs[0]); !bytes.Equal(after, b) {
		t.Fatal("verify changed the segment")
	}
	code, out, _ = run(t, "wal", "dump", "--data-dir", dir)
	sc := bufio.NewScanner(strings.NewReader(out))
	var records, corrupt int
	for sc.Scan() {
		var line map[string]any
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatalf("dump printed a non-JSON line %q", sc.Text())
		}
		if _, ok := line["corrupt"]; ok {
			corrupt++
		} else if _, ok := line["lsn"]; ok {
			records++
		}
	}
	if code != ExitFailure || corrupt != 1 || records == 0 || records >= 40 {
		t.Fatalf("dump: exit %d, %d records, %d corrupt", code, records, corrupt)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{{}, {"nope"}, {"wal"}, {"wal", "frob"}, {"wal", "dump", "--bogus"}, {"demo", "--fsync", "sometimes"}, {"wal", "stats", "extra"}} {
		if code, _, _ := run(t, args...); code != ExitUsage {
			t.Errorf("%q: exit %d, want %d", args, code, ExitUsage)
		}
	}
	if code, out, _ := run(t, "version"); code != ExitOK || !strings.HasPrefix(out, "edged ") {
		t.Errorf("version: %d %q", code, out)
	}
	if code, _, errOut := run(t, "wal", "stats", "--data-dir", t.TempDir()); code != ExitFailure || !strings.Contains(errOut, "no write-ahead log") {
		t.Errorf("stats on an empty dir: %d %q", code, errOut)
	}
}

func TestDemoAppendsAndTails(t *testing.T) {
	dir := t.TempDir()
	code, out, errOut := run(t, "demo", "--data-dir", dir, "--duration", "1500ms", "--report", "500ms", "--rate", "400", "--fsync", "always")
	if code != ExitOK {
		t.Fatalf("demo: %d %s", code, errOut)
	}
	if !strings.Contains(out, "durable through") {
		t.Fatalf("demo printed no progress: %q", out)
	}
	l, err := wal.OpenReadOnly(wal.Options{Dir: walDir(dir)})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	st := l.Stats()
	if st.LastLSN < 200 || st.Cursors["demo"] == 0 {
		t.Fatalf("after the demo: %d records, demo cursor %d", st.LastLSN, st.Cursors["demo"])
	}
}
