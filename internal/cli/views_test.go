package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edged-io/edged"
	"github.com/edged-io/edged/aggregate/replay"
	"github.com/edged-io/edged/aggregate/view"
	"github.com/edged-io/edged/wal"
)

// writeHistory writes a log of 3 series reading every 200 ms for 5
// minutes, some readings 3 s late, with ticks, into dataDir.
func writeHistory(t *testing.T, dataDir string) {
	t.Helper()
	l, err := wal.Open(wal.Options{Dir: walDir(dataDir), Sync: wal.SyncNever})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { l.Run(context.Background()); close(done) }()
	t0 := time.Now().Add(-time.Hour).Truncate(time.Minute).UnixNano()
	step := int64(200 * time.Millisecond)
	for k := range 5 * 60 * 5 {
		now := t0 + int64(k)*step
		var rs []edged.Reading
		for s := range 3 {
			t := now
			if (k+s)%37 == 0 {
				t -= int64(3*time.Second + 50*time.Millisecond)
			}
			rs = append(rs, edged.Reading{Device: "pi", Series: fmt.Sprintf("s%d", s), Unit: "°C", Time: t, Ingest: now,
				Value: 20 + math.Sin(float64(k)/50+float64(s))})
		}
		rec, _ := edged.AppendRecord(nil, rs)
		l.Append(rec)
		if k%5 == 4 {
			l.Append(edged.AppendTick(nil, now))
		}
	}
	l.Append(edged.AppendTick(nil, t0+int64(2*time.Hour)))
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	<-done
}

func writeConfig(t *testing.T, dataDir, name, aggregate string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	y := fmt.Sprintf("device: pi\ndata_dir: %s\naggregate: %s\n", dataDir, aggregate)
	if err := os.WriteFile(p, []byte(y), 0o640); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestReplayAndViewsCommands: the whole flow after fixing a setting —
// replay into v2, compare with v1, activate, delete — and the commands'
// refusals.
func TestReplayAndViewsCommands(t *testing.T) {
	dir := t.TempDir()
	writeHistory(t, dir)
	live := writeConfig(t, dir, "live.yaml", "{windows: [10s, 1m], lateness: 5s}")
	fixed := writeConfig(t, dir, "fixed.yaml", "{windows: [10s, 1m], lateness: 1s, view: v2}")
	root := replay.Layout{DataDir: dir}.Views()

	// v1 stands for the daemon's views (the same code computes them).
	if code, out, errOut := run(t, "replay", "-c", live, "--view", "v1", "--progress", "0"); code != ExitOK || !strings.Contains(out, "caught up") {
		t.Fatalf("replay v1: %d %q %q", code, out, errOut)
	}
	view.SetLive(root, "v1")
	code, out, errOut := run(t, "replay", "-c", fixed, "--progress", "1ms", "--workers", "2")
	if code != ExitOK || !strings.Contains(out, "replay v2: replayed LSN 1..") || !strings.Contains(errOut, "replay v2:") {
		t.Fatalf("replay v2: %d %q %q", code, out, errOut)
	}
	if code, out, _ := run(t, "replay", "-c", live, "--view", "same", "--progress", "0"); code != ExitOK {
		t.Fatalf("replay same: %d %q", code, out)
	}

	code, out, _ = run(t, "views", "list", "--data-dir", dir)
	if code != ExitOK || !strings.Contains(out, "v1 ") || !strings.Contains(out, "v2 ") || !strings.Contains(out, "no version activated") {
		t.Fatalf("views list: %d\n%s", code, out)
	}
	code, out, _ = run(t, "views", "list", "--json", "--data-dir", dir)
	var list []versionRow
	if err := json.Unmarshal([]byte(out), &list); code != ExitOK || err != nil || len(list) != 3 {
		t.Fatalf("views list --json: %d %v\n%s", code, err, out)
	}
	for _, r := range list {
		if r.Rows < 50 || r.ThroughLSN == 0 || r.Fingerprint == "" || r.Active != (r.Name == "v1") || r.Live != (r.Name == "v1") {
			t.Errorf("list row %+v", r)
		}
	}

	// What the fix changed: late readings (lateness 5s → 1s), and so the
	// aggregates of the windows that lost them.
	code, out, _ = run(t, "views", "diff", "v1", "v2", "--data-dir", dir, "--json")
	var rep diffReport
	if err := json.Unmarshal([]byte(out), &rep); code != ExitOK || err != nil {
		t.Fatalf("views diff --json: %d %v\n%s", code, err, out)
	}
	if len(rep.Changed) == 0 || rep.Fields["late"] == nil || rep.Fields["count"] == nil || rep.Same == 0 {
		t.Fatalf("diff v1 v2: %d changed, fields %v, %d same", len(rep.Changed), rep.Fields, rep.Same)
	}
	for _, w := range rep.Changed {
		if d, ok := w.Deltas["late"]; ok && (d.Delta == nil || *d.Delta <= 0) {
			t.Fatalf("a window with fewer late readings at a shorter lateness: %+v", w)
		}
	}
	code, out, _ = run(t, "views", "diff", "v1", "v2", "--data-dir", dir, "--series", "s1", "--window", "1m", "--limit", "2", "--exit-code")
	if code != ExitFailure || !strings.Contains(out, "changed windows (2 of") || !strings.Contains(out, "late") || strings.Contains(out, " s0 ") {
		t.Fatalf("views diff: %d\n%s", code, out)
	}
	if code, out, _ := run(t, "views", "diff", "v1", "same", "--data-dir", dir, "--exit-code", "--all-fields"); code != ExitOK || !strings.Contains(out, "0 changed, 0 only") {
		t.Fatalf("diff of a replay with the live config: %d\n%s", code, out)
	}

	// Switch, and what delete refuses.
	if code, out, _ := run(t, "views", "activate", "v2", "--data-dir", dir); code != ExitOK || !strings.Contains(out, "aggregate.view: v2") {
		t.Fatalf("activate: %d %s", code, out)
	}
	if a, _ := view.Active(root); a != "v2" {
		t.Fatalf("ACTIVE = %q", a)
	}
	for v, why := range map[string]string{"v2": "active", "v1": "daemon writes"} {
		if code, _, errOut := run(t, "views", "delete", v, "--data-dir", dir); code != ExitFailure || !strings.Contains(errOut, why) {
			t.Fatalf("delete %s: %d %q", v, code, errOut)
		}
	}
	lock, err := view.LockVersion(root, "same", "edged replay")
	if err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := run(t, "views", "delete", "same", "--data-dir", dir); code != ExitFailure || !strings.Contains(errOut, "edged replay") {
		t.Fatalf("delete of a version being written: %d %q", code, errOut)
	}
	if code, _, errOut := run(t, "replay", "-c", live, "--view", "same"); code != ExitFailure || !strings.Contains(errOut, "being written") {
		t.Fatalf("replay into a version being written: %d %q", code, errOut)
	}
	lock.Unlock()
	if code, out, _ := run(t, "views", "delete", "same", "--data-dir", dir); code != ExitOK || !strings.Contains(out, "deleted same") {
		t.Fatalf("delete: %d %s", code, out)
	}
	for _, p := range []string{view.VersionDir(root, "same"), replay.Layout{DataDir: dir}.Checkpoints("same")} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s left behind", p)
		}
	}
	if _, err := os.Stat(filepath.Join(replay.Layout{DataDir: dir}.Checkpoints("v2"), "checkpoint")); err != nil {
		t.Errorf("deleting one version took another's checkpoint: %v", err)
	}

	// A resumed replay of a finished one does nothing new; another config
	// into the same version is refused.
	if code, out, _ := run(t, "replay", "-c", fixed, "--progress", "0"); code != ExitOK || !strings.Contains(out, "resumed") || !strings.Contains(out, " 0 records") {
		t.Fatalf("replay again: %d %q", code, out)
	}
	if code, _, errOut := run(t, "replay", "-c", live, "--view", "v2"); code != ExitFailure || !strings.Contains(errOut, "another aggregate configuration") {
		t.Fatalf("another config into v2: %d %q", code, errOut)
	}
}

func TestReplayAndViewsUsageErrors(t *testing.T) {
	dir := t.TempDir()
	cfg := writeConfig(t, dir, "c.yaml", "{windows: [10s]}")
	for _, args := range [][]string{
		{"replay"},
		{"replay", "-c", cfg, "--from", "yesterday"},
		{"replay", "-c", cfg, "--view", "10s"},
		{"replay", "-c", cfg, "--from", "20", "--to", "10"},
		{"replay", "-c", cfg, "--alerts-report", filepath.Join(dir, "r.jsonl")},
		{"views"},
		{"views", "rename"},
		{"views", "activate"},
		{"views", "diff", "v1"},
		{"views", "delete", "../x"},
	} {
		if code, _, _ := run(t, args...); code != ExitUsage {
			t.Errorf("%v: exit %d, want %d", args, code, ExitUsage)
		}
	}
	if code, _, errOut := run(t, "views", "activate", "v7", "--data-dir", dir); code != ExitFailure || !strings.Contains(errOut, "no view version v7") {
		t.Errorf("activate v7: %d %q", code, errOut)
	}
}
