package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edged-io/edged/aggregate"
	"github.com/edged-io/edged/aggregate/replay"
	"github.com/edged-io/edged/aggregate/view"
	"github.com/edged-io/edged/internal/config"
)

type queryResponse struct {
	View   string `json:"view"`
	Window string `json:"window"`
	Rows   []struct {
		Start  time.Time          `json:"start"`
		Fields map[string]float64 `json:"fields"`
	} `json:"rows"`
}

func query(t *testing.T, url string) (int, queryResponse) {
	t.Helper()
	code, body := get(t, url, "")
	var q queryResponse
	if code == 200 {
		if err := json.Unmarshal([]byte(body), &q); err != nil {
			t.Fatalf("%s: %v\n%s", url, err, body)
		}
	}
	return code, q
}

// TestDaemonServesViewVersions: the daemon migrates the unversioned
// layout into v1 and writes v1; a replay beside it computes v2 with other
// windows; ?view= reads any version, and activating v2 makes the API read
// it by default at once.
func TestDaemonServesViewVersions(t *testing.T) {
	c := testConfig(t, "aggregate: {windows: [200ms, 1s], lateness: 50ms}\n")
	root := replay.Layout{DataDir: c.DataDir}.Views()
	// The layout of a release without versions, with one window in it.
	old, err := view.Open(root, []time.Duration{200 * time.Millisecond, time.Second}, 0)
	if err != nil {
		t.Fatal(err)
	}
	oldStart := time.Now().Add(-time.Hour).Truncate(time.Second).UnixNano()
	v := []float64{42}
	for range len(view.Fields) - 1 {
		v = append(v, math.NaN())
	}
	if err := old.Put([]view.Row{{Device: "test-pi", Series: "old", Size: time.Second, Start: oldStart, End: oldStart + int64(time.Second), Values: v}}); err != nil {
		t.Fatal(err)
	}
	old.Close()

	d, stop := start(t, c)
	base := "http://" + d.Addr()
	if live, _ := view.Live(root); live != "v1" {
		t.Fatalf("LIVE = %q", live)
	}
	if _, err := view.LockVersion(root, "v1", "test"); !errors.Is(err, view.ErrLocked) {
		t.Fatalf("v1 is not locked while the daemon writes it: %v", err)
	}
	code, q := query(t, base+"/api/v1/query?series=old&window=1s&from=0")
	if code != 200 || q.View != "v1" || len(q.Rows) != 1 || q.Rows[0].Fields["count"] != 42 {
		t.Fatalf("the migrated window: %d %+v", code, q)
	}
	time.Sleep(1500 * time.Millisecond)

	// A replay beside the running daemon, into v2, with 400ms windows.
	r, err := replay.New(replay.Options{DataDir: c.DataDir, Version: "v2",
		Aggregate: aggregate.Options{Windows: []time.Duration{400 * time.Millisecond}, Lateness: 50 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if r.Summary().Windows == 0 {
		t.Fatalf("replay: %+v", r.Summary())
	}
	code, q = query(t, base+"/api/v1/query?series=sim/1&from=0&view=v2")
	if code != 200 || q.View != "v2" || q.Window != "400ms" || len(q.Rows) < 2 {
		t.Fatalf("?view=v2: %d %+v", code, q)
	}
	if code, _ := query(t, base+"/api/v1/query?series=sim/1&from=0&view=v9"); code != 404 {
		t.Fatalf("?view=v9: %d", code)
	}
	if code, _ := query(t, base+"/api/v1/query?series=sim/1&from=0&view=..%2Fx"); code != 400 {
		t.Fatalf("a bad version name: %d", code)
	}
	code, q = query(t, base+"/api/v1/query?series=sim/1&from=0")
	if code != 200 || q.View != "v1" || q.Window != "200ms" {
		t.Fatalf("default before activation: %d %+v", code, q)
	}
	if err := view.SetActive(root, "v2"); err != nil {
		t.Fatal(err)
	}
	code, q = query(t, base+"/api/v1/query?series=sim/1&from=0")
	if code != 200 || q.View != "v2" || q.Window != "400ms" {
		t.Fatalf("default after activating v2: %d %+v", code, q)
	}
	if code, body := get(t, base+"/api/v1/series", ""); code != 200 || !strings.Contains(body, `"400ms"`) {
		t.Fatalf("series of v2: %d %s", code, body)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if left, _ := os.ReadDir(filepath.Join(root, ".snapshots")); len(left) != 0 {
		t.Fatalf("snapshots left behind: %v", left)
	}
	if l, err := view.LockVersion(root, "v1", "test"); err != nil {
		t.Fatalf("v1 still locked after the daemon stopped: %v", err)
	} else {
		l.Unlock()
	}
	m, err := replay.ReadManifest(root, "v1")
	if err != nil || m.Source != "live" || m.Config.Windows[0] != "200ms" {
		t.Fatalf("v1 manifest %+v, %v", m, err)
	}

	// The switch: the daemon, now configured to write v2 with the
	// settings it was replayed with, continues from the replay's
	// checkpoint.
	c2 := *c
	c2.Aggregate.View = "v2"
	c2.Aggregate.Windows = []config.Duration{config.Duration(400 * time.Millisecond)}
	d2, err := New(&c2, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := d2.stream.Stats().CheckpointLSN, r.Summary().ThroughLSN; got != want {
		t.Fatalf("the daemon on v2 starts from LSN %d, not from the replay's checkpoint %d", got, want)
	}
	d2.closeViews()
	d2.log.Close()
	d2.estimates.Close()
	d2.ln.Close()
	if live, _ := view.Live(root); live != "v2" {
		t.Fatalf("LIVE = %q after the switch", live)
	}
	if m, _ := replay.ReadManifest(root, "v2"); m.Source != "live" {
		t.Fatalf("v2 manifest after the switch: %+v", m)
	}
}

// TestDaemonRefusesAVersionInUse: another process writing the daemon's
// version stops it from starting, with a message that says who.
func TestDaemonRefusesAVersionInUse(t *testing.T) {
	c := testConfig(t, "aggregate: {view: v3}\n")
	lock, err := view.LockVersion(replay.Layout{DataDir: c.DataDir}.Views(), "v3", "edged replay")
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Unlock()
	if _, err := New(c, nil); !errors.Is(err, view.ErrLocked) || !strings.Contains(err.Error(), "edged replay") {
		t.Fatalf("New: %v", err)
	}
}
