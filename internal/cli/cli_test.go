package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/edged-io/edged"
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
	for _, args := range [][]string{{}, {"nope"}, {"wal"}, {"wal", "frob"}, {"wal", "dump", "--bogus"}, {"check"}, {"run", "-c", "/nonexistent/edged.yaml", "--bogus"}, {"wal", "stats", "extra"}} {
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

func TestCheck(t *testing.T) {
	if code, out, errOut := run(t, "check", "-c", "../../configs/edged.yaml"); code != ExitOK || !strings.Contains(out, "OK") {
		t.Fatalf("check example: %d %q %q", code, out, errOut)
	}
	if code, out, _ := run(t, "check", "-c", "../../configs/edged.yaml", "--print"); code != ExitOK || !strings.Contains(out, "segment_size: 16MiB") {
		t.Fatalf("check --print: %d %q", code, out)
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("device: pi\nwal:\n  fsync: sometimes\n"), 0o644)
	if code, _, errOut := run(t, "check", "-c", bad); code != ExitFailure || !strings.Contains(errOut, bad+":3: wal.fsync") {
		t.Fatalf("check bad: %d %q", code, errOut)
	}
}

// TestCheckEveryExampleConfig: `edged check` accepts each edged config
// in configs/ (reconcile*.yaml belong to edged-reconcile).
func TestCheckEveryExampleConfig(t *testing.T) {
	files, _ := filepath.Glob("../../configs/*.yaml")
	for _, f := range files {
		if strings.HasPrefix(filepath.Base(f), "reconcile") {
			continue
		}
		if code, _, errOut := run(t, "check", "-c", f); code != ExitOK {
			t.Errorf("check %s: %d %s", f, code, errOut)
		}
	}
}

// TestCheckReadsTLSFiles: `edged check` parses mqtt.tls's files, as the
// daemon's start does, and names the line, key and file of a bad one.
func TestCheckReadsTLSFiles(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.pem")
	os.WriteFile(notPEM, []byte("hello\n"), 0o644)
	cfg := filepath.Join(dir, "edged.yaml")
	os.WriteFile(cfg, []byte("device: pi\nmqtt:\n  broker: ssl://broker:8883\n  tls:\n    ca_file: "+notPEM+"\n"), 0o644)
	for _, args := range [][]string{{"check", "-c", cfg}, {"check", "-c", cfg, "--print"}} {
		code, _, errOut := run(t, args...)
		if want := cfg + ":5: mqtt.tls.ca_file: " + notPEM + " holds no PEM certificate"; code != ExitFailure || !strings.Contains(errOut, want) {
			t.Errorf("%v: %d %q; want %q", args, code, errOut, want)
		}
	}
}

func TestDumpDecodesReadings(t *testing.T) {
	dir := t.TempDir()
	l, err := wal.Open(wal.Options{Dir: walDir(dir)})
	if err != nil {
		t.Fatal(err)
	}
	rec, _ := edged.AppendRecord(nil, []edged.Reading{{Device: "pi", Series: "t", Unit: "°C", Value: 21.5,
		Time: 1_700_000_000_000_000_000, Ingest: 1_700_000_000_000_000_000, Flags: edged.TimeFromIngest}})
	l.Append(rec)
	l.Append(edged.AppendTick(nil, 1_700_000_001_000_000_000))
	l.Close()
	code, out, _ := run(t, "wal", "dump", "--data-dir", dir)
	want := `{"lsn":1,"size":` + strconv.Itoa(len(rec)) + `,"readings":[{"device":"pi","series":"t","value":21.5,"unit":"°C","time":"2023-11-14T22:13:20Z","ingest":"2023-11-14T22:13:20Z","flags":["time_from_ingest"]}]}
{"lsn":2,"size":10,"tick":"2023-11-14T22:13:21Z"}
`
	if code != ExitOK || out != want {
		t.Fatalf("dump = %d\n%s\nwant\n%s", code, out, want)
	}
}
