//go:build linux

package reliability

import (
	"context"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/edged-io/edged/wal"
)

const simInterval = 20 * time.Millisecond

// checkpointEvery is aggregate/stream's default checkpoint interval: a
// pause longer than it lets the aggregator checkpoint between two cuts.
const checkpointEvery = 10 * time.Second

// TestPowerLoss cuts the power under edged: kill -9, then every write its
// data directory had not made durable is thrown away, then edged starts
// again on what is left. The data directory is a CrashFS (a FUSE file
// system in this package) in its ext4 mode: file data survives as of the
// file's last fsync, directory changes as of any fsync (ext4's journal
// commit, data=ordered, the Raspberry Pi OS default), and a random prefix
// of each file's unsynced writes reaches the disk (torn tails). Run for wal.fsync
// always and interval (5 ms); short tier 8 cuts each (one after a pause
// long enough for an aggregator checkpoint), long 60 (every tenth).
//
// Pass criteria, MQTT path (500 readings/s, shipping on):
//   - edged starts after every cut, never refusing (known bug
//     "views-refuse-start" breaks this), and ingests again;
//   - zero loss under both policies: nothing edged acknowledged is lost
//     and what it had not acknowledged is redelivered, so the WAL and
//     InfluxDB hold every accepted reading; `edged wal verify` OK;
//     reconcile finds no drift;
//   - the windows equal the exact aggregates (known bug
//     "views-not-durable" breaks this after a checkpoint).
//
// Pass criteria, local sensor (a simulated sensor every 20 ms, nothing to
// replay it), on its own edged:
//   - every record edged reported durable (/api/v1/wal, just before the
//     cut) survives it;
//   - the readings lost at a cut are the last ones before it, within
//     fsync_interval + one sensor period + 100 ms of scheduling slack under
//     interval, one period + 100 ms under always (widened by any stall of
//     the sensor itself in the second before the cut);
//   - what survived at the edge is exactly what InfluxDB holds (nothing
//     shipped and then lost at the edge).
//
// The strict-posix subtest uses CrashFS's strict model (a directory entry
// survives only an fsync of its directory): known bug "dir-fsync".
func TestPowerLoss(t *testing.T) {
	t.Parallel()
	RequireRoot(t)
	for _, policy := range []string{"always", "interval"} {
		t.Run(policy, func(t *testing.T) {
			e := newEnv(t, envOptions{device: "rel-power-" + policy, ship: true})
			powerLossMQTT(t, e, policy)
			powerLossLocal(t, e, policy)
		})
	}
	t.Run("strict-posix", powerLossStrict)
}

// onCrashFS mounts a CrashFS under the env's directory and points edged's
// data directory into it.
func onCrashFS(t *testing.T, e *env, journal bool, torn *uint64) *CrashFS {
	cfs := MountCrashFS(t, filepath.Join(e.dir, "mnt-"+e.cfg.Device))
	cfs.SetModel(journal, torn)
	e.cfg.DataDir = filepath.Join(cfs.Dir(), "data")
	if err := os.Mkdir(e.cfg.DataDir, 0o755); err != nil {
		t.Fatal(err)
	}
	cfs.SyncAll()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("data directory after the test:\n%s", listDir(e.cfg.DataDir))
		}
	})
	return cfs
}

func powerLossMQTT(t *testing.T, e *env, policy string) {
	const rate = 500
	fig := newFigures(t)
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	cfs := onCrashFS(t, e, true, &seed) // torn tails too
	e.cfg.Fsync, e.cfg.FsyncInterval, e.cfg.SegmentSize = policy, 5*time.Millisecond, "1MiB"
	d := e.start()

	load := NewLoad(5, 10*time.Millisecond, 2*time.Minute)
	pub, err := NewPublisher(e.broker.URL, load)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	stopPublishing := pub.PublishInBackground(context.Background(), rate)
	defer stopPublishing()

	cuts := tier3(3, 8, 60)
	rng := rand.New(rand.NewPCG(seed, 2))
	var ingest durations
	checkpointed, refused := 0, 0
	for cut := range cuts {
		pause := jitter(rng, 300*time.Millisecond, 1200*time.Millisecond)
		if cut%10 == cuts/2%10 {
			pause = checkpointEvery + 2*time.Second
			checkpointed++
		}
		time.Sleep(pause)
		d.Kill()
		if err := cfs.PowerCut(); err != nil {
			t.Fatal(err)
		}
		d = startAfterCut(t, e, &refused)
		in, ok := d.WaitIngest(10 * time.Second)
		if !ok {
			t.Fatalf("cut %d: edged did not ingest again within 10 s", cut)
		}
		ingest = append(ingest, in)
	}
	n := stopPublishing()
	if err := pub.Finish(n, time.Minute); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(d.LogPath)
			t.Logf("warnings, errors and recoveries of every run:\n%s",
				grepLines(string(b), "level=WARN", "level=ERROR", "resuming", "torn", "quarantin"))
		}
	})
	// The sentinels close every window at once; with the known bug the
	// missing ones never come, so do not wait long for them.
	enforce := enforced(t, "views-not-durable")
	timeout := 5 * time.Second
	if enforce {
		timeout = time.Minute
	}
	win := CompareWindows(t, d, load, n, windowSizes, timeout)
	if bad := win.Missing + win.Wrong + win.Extra; bad > 0 && enforce {
		t.Errorf("windows: %d missing, %d wrong, %d unexpected of %d:\n%s", win.Missing, win.Wrong, win.Extra, win.Windows,
			strings.Join(win.Problems, "\n"))
	}
	WaitShipped(t, d, time.Minute)
	d.Stop(t)

	want := load.Want(n, true)
	walDiff := e.checkWAL(want)
	verify := VerifyWAL(t, edgedBin, e.cfg.DataDir)
	infDiff := e.checkInflux(want)
	rep := Reconcile(t, e.influx.URL, e.influx.Bucket, e.token, e.cfg.Device)

	logs, _ := os.ReadFile(d.LogPath)
	torn := strings.Count(string(logs), "truncated a torn tail")
	quarantined := strings.Count(string(logs), "quarantined a corrupt segment")
	pastEnd := strings.Count(string(logs), "a cursor is past the end of the log")
	if quarantined > 0 {
		t.Errorf("a power cut made edged quarantine a segment: only the torn tail of the active segment may be damaged")
	}
	st := cfs.Stats()
	fig.add("recoveries: %d torn tails truncated, %d segments quarantined, %d cursors found past the end of the log",
		torn, quarantined, pastEnd)
	fig.add("starts refused after a cut (known bug views-refuse-start; the test then deleted DATA/views, as an operator would): %d", refused)
	fig.add("wal.fsync %s, ext4-journal model with torn unsynced tails: %d power cuts at random moments (%d after a pause > the %v checkpoint interval), %d msg/s",
		policy, cuts, checkpointed, checkpointEvery, rate)
	fig.add("CrashFS: %d writes, %d fsyncs, %d dir fsyncs; thrown away at the cuts: %d bytes, %d directory entries",
		st.Writes, st.Fsyncs, st.DirFsyncs, st.LostBytes, st.LostEntries)
	fig.add("MQTT path: %d readings accepted; WAL missing %d (redelivered identities %d); InfluxDB missing %d, extra %d, wrong %d; verify: %s",
		len(want), len(walDiff.Missing), walDiff.Duplicated, len(infDiff.Missing), len(infDiff.Extra), len(infDiff.WrongValue),
		strings.ReplaceAll(verify, "\n", " "))
	fig.add("windows: %d expected, %d missing, %d wrong (known bug views-not-durable when > 0); reconcile checked %d, drift %d",
		win.Windows, win.Missing, win.Wrong, rep.Total.Checked, rep.Total.Drift)
	fig.add("restart-to-ingest after a cut: %v", ingest)
}

func powerLossLocal(t *testing.T, e *env, policy string) {
	fig := newFigures(t)
	e.cfg.Device = "rel-power-local-" + policy
	cfs := onCrashFS(t, e, true, nil)
	e.cfg.SimInterval, e.cfg.Subscriptions = simInterval, "[]"
	e.write()
	d := StartEdged(t, edgedBin, e.cfgPath, e.port)
	d.WaitReady(t, 20*time.Second)

	refused := 0
	cuts := tier3(3, 8, 30)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 3))
	var cutAt []time.Time
	for cut := range cuts {
		time.Sleep(jitter(rng, 300*time.Millisecond, 1200*time.Millisecond))
		st, err := d.WAL()
		if err != nil {
			t.Fatal(err)
		}
		cutAt = append(cutAt, time.Now())
		d.Kill()
		if err := cfs.PowerCut(); err != nil {
			t.Fatal(err)
		}
		// Whatever edged had reported durable survives the cut.
		if after := lastLSN(t, e.cfg.DataDir); after < st.DurableLSN {
			t.Errorf("cut %d: the log was durable through LSN %d, only %d survived", cut, st.DurableLSN, after)
		}
		d = startAfterCut(t, e, &refused)
	}
	time.Sleep(500 * time.Millisecond)
	WaitShipped(t, d, time.Minute)
	d.Stop(t)

	walAll, err := WALReadings(e.cfg.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	var sim []int64
	for id := range walAll {
		sim = append(sim, id.Time)
	}
	sort.Slice(sim, func(i, j int) bool { return sim[i] < sim[j] })
	bound := simInterval + 100*time.Millisecond
	if policy == "interval" {
		bound += e.cfg.FsyncInterval
	}
	var lost durations
	for i, c := range cutAt {
		// The last local reading that survived before the cut.
		k := sort.Search(len(sim), func(j int) bool { return sim[j] > c.UnixMilli() }) - 1
		if k < 0 || (i > 0 && sim[k] < cutAt[i-1].UnixMilli()) {
			t.Errorf("cut %d: no local reading survived between the previous cut and this one", i)
			continue
		}
		w := c.Sub(time.UnixMilli(sim[k]))
		lost = append(lost, w)
		// A sensor starved of CPU (the machine is shared) produces nothing
		// to lose: widen the bound by the largest gap between the readings
		// that survived in the second before the cut.
		gap := time.Duration(0)
		for j := k; j > 0 && sim[j] > c.Add(-time.Second).UnixMilli(); j-- {
			gap = max(gap, time.Duration(sim[j]-sim[j-1])*time.Millisecond)
		}
		if w > bound+max(0, gap-simInterval) {
			t.Errorf("cut %d: the local readings of the last %v before the cut were lost (bound %v; the sensor's largest gap before it %v)",
				i, w, bound, gap)
		}
	}
	central, err := e.influxQL().Readings("edged_reading", e.cfg.Device)
	if err != nil {
		t.Fatal(err)
	}
	diff := Compare(walAll, central)
	if !diff.OK() {
		t.Errorf("local sensor: WAL vs InfluxDB: %v", diff)
	}
	fig.add("local sensor every %v, wal.fsync %s: %d power cuts; readings lost before each cut span %v (bound %v)",
		simInterval, policy, cuts, lost, bound)
	fig.add("%d local readings survived at the edge; InfluxDB holds exactly them: %v; starts refused (views-refuse-start): %d",
		len(walAll), diff.OK(), refused)
}

// startAfterCut starts edged on what a power cut left and waits until it
// is ready. edged must never refuse to start (SPEC §3); known bug
// "views-refuse-start" makes it refuse when the view store's own WAL
// (tstorage) has a torn tail. Unless that criterion is enforced, the test
// then does what an operator would: it deletes the derived view store and
// starts edged again, counting the refusal.
func startAfterCut(t *testing.T, e *env, refused *int) *Edged {
	t.Helper()
	d := StartEdged(t, edgedBin, e.cfgPath, e.port)
	if _, err := d.Ready(20 * time.Second); err != nil {
		logs := tail(d.LogPath, 5)
		if !d.Exited() || !strings.Contains(logs, "failed to recover WAL") || enforced(t, "views-refuse-start") {
			t.Fatalf("edged did not start after a power cut: %v\n%s", err, logs)
		}
		*refused++
		if err := os.RemoveAll(filepath.Join(e.cfg.DataDir, "views")); err != nil {
			t.Fatal(err)
		}
		d = StartEdged(t, edgedBin, e.cfgPath, e.port)
		d.WaitReady(t, 20*time.Second)
	}
	return d
}

// lastLSN is the last record of the log in dataDir, read without a daemon.
func lastLSN(t *testing.T, dataDir string) uint64 {
	t.Helper()
	l, err := wal.OpenReadOnly(wal.Options{Dir: filepath.Join(dataDir, "wal")})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Stats().LastLSN
}

// powerLossStrict: the strict POSIX model, one cut after a few seconds.
func powerLossStrict(t *testing.T) {
	fig := newFigures(t)
	e := newEnv(t, envOptions{device: "rel-power-strict"})
	cfs := onCrashFS(t, e, false, nil)
	e.cfg.Fsync, e.cfg.SegmentSize = "always", "1MiB"
	d := e.start()
	load := NewLoad(3, 10*time.Millisecond, 2*time.Minute)
	pub, err := NewPublisher(e.broker.URL, load)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	ctx, stop := context.WithTimeout(context.Background(), 3*time.Second)
	defer stop()
	n := pub.Publish(ctx, 0, math.MaxInt32, 300, nil)
	if err := pub.WaitAccepted(n, false, time.Minute); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	d.Kill()
	if err := cfs.PowerCut(); err != nil {
		t.Fatal(err)
	}
	d = e.start()
	if err := pub.Finish(n, time.Minute); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	d.Stop(t)
	got, err := WALReadings(e.cfg.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	diff := Compare(load.Want(n, true), onlySeriesOf(load.Want(n, true), got))
	if !diff.OK() && enforced(t, "dir-fsync") {
		t.Errorf("WAL after a power cut under strict POSIX durability: %v", diff)
	}
	fig.add("strict POSIX model, wal.fsync always, one cut after 3 s: %d of %d acknowledged readings missing from the WAL (known bug dir-fsync when > 0)",
		len(diff.Missing), diff.Expected)
}
