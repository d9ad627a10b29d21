//go:build linux

package reliability

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// restartDelay is the test's systemd RestartSec. The shipped unit
// (packaging/edged.service) says 5s, which alone puts the resume time
// after space returns anywhere in 0–5 s plus the start-up: see
// RELIABILITY.md.
const restartDelay = time.Second

// TestDiskFull puts edged's data directory on a 48 MiB loop-mounted ext4,
// fills it to ENOSPC with a filler file while 500 readings/s arrive, holds
// it full for 5 s, then deletes the filler. The WAL's write error is sticky
// (SPEC §3): edged exits non-zero; the test plays systemd
// (Restart=on-failure) and restarts it after restartDelay each time.
//
// Pass criteria:
//   - no panic in any run's output, and every run that ended did so with
//     a non-zero exit status (a clean exit would not be restarted);
//   - no corrupt record: `edged wal verify` is OK at the end;
//   - acknowledgements stop while the disk is full (the broker keeps the
//     messages: the publisher's messages are still accepted) and resume
//     within 5 s of the space returning;
//   - nothing lost on the MQTT path: WAL and InfluxDB hold every accepted
//     reading, the windows are exact, reconcile finds no drift.
func TestDiskFull(t *testing.T) {
	t.Parallel()
	const rate = 500
	RequireRoot(t)
	fig := newFigures(t)
	e := newEnv(t, envOptions{device: "rel-diskfull", ship: true})
	MountExt4(t, e.cfg.DataDir, 48<<20)
	e.cfg.SegmentSize = "1MiB"
	e.write()
	sup := Supervise(t, edgedBin, e.cfgPath, e.port, restartDelay)
	sup.Current().WaitReady(t, 20*time.Second)
	e.waitSubscribed()

	load := NewLoad(5, 10*time.Millisecond, 2*time.Minute)
	pub, err := NewPublisher(e.broker.URL, load)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	stopPublishing := pub.PublishInBackground(context.Background(), rate)
	defer stopPublishing()
	time.Sleep(2 * time.Second)

	filler, size, err := Fill(e.cfg.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	full := time.Now()
	first := sup.Current()
	if err := waitFor(15*time.Second, first.Exited); err != nil {
		t.Fatalf("edged still running 15 s after the disk filled up")
	}
	failedAfter := time.Since(full)
	if err := first.ExitErr(); err == nil {
		t.Errorf("edged exited with status 0 on a full disk: systemd would not restart it")
	}
	_, acceptedFull0, _ := pub.Counts()
	time.Sleep(5 * time.Second)
	_, acceptedFull1, _ := pub.Counts()
	if acceptedFull1-acceptedFull0 < rate*3 {
		t.Errorf("the broker accepted only %d messages in 5 s of full disk", acceptedFull1-acceptedFull0)
	}
	startsFull := sup.Starts()

	atFree := sup.Current()
	var acked0 float64
	if m, err := atFree.Metrics(); err == nil {
		acked0 = m["edged_mqtt_acked_total"]
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	freed := time.Now()
	if err := waitFor(30*time.Second, func() bool {
		cur := sup.Current()
		m, err := cur.Metrics()
		if err != nil {
			return false
		}
		if cur == atFree {
			return m["edged_mqtt_acked_total"] > acked0
		}
		return m["edged_mqtt_acked_total"] > 0
	}); err != nil {
		t.Fatal("ingest did not resume within 30 s of the space returning")
	}
	resume := time.Since(freed)
	if resume > 5*time.Second {
		t.Errorf("ingest resumed %v after the space returned (bound 5 s)", resume)
	}
	time.Sleep(2 * time.Second)

	n := stopPublishing()
	if err := pub.Finish(n, time.Minute); err != nil {
		t.Fatal(err)
	}
	d := sup.Current()
	win := CheckWindows(t, d, load, n, windowSizes, time.Minute)
	WaitShipped(t, d, time.Minute)
	sup.Close()
	d.Stop(t)

	logs, _ := os.ReadFile(d.LogPath)
	if strings.Contains(string(logs), "panic:") || strings.Contains(string(logs), "goroutine 1 [") {
		t.Errorf("a run panicked: see %s", d.LogPath)
	}
	failures := sup.Failures()
	for _, f := range failures {
		if !strings.Contains(f, "exit status") {
			t.Errorf("a run ended by %q, not an exit status", f)
		}
	}
	verify := VerifyWAL(t, edgedBin, e.cfg.DataDir)
	want := load.Want(n, true)
	walDiff := e.checkWAL(want)
	infDiff := e.checkInflux(want)
	rep := Reconcile(t, e.influx.URL, e.influx.Bucket, e.token, e.cfg.Device)
	torn := strings.Count(string(logs), "torn")
	quarantine, _ := filepath.Glob(filepath.Join(e.cfg.DataDir, "wal", "quarantine", "*"))

	fig.add("48 MiB ext4 (loop), filler %d MiB to ENOSPC at %d msg/s; systemd played with RestartSec=%v", size>>20, rate, restartDelay)
	fig.add("edged exited %v after the disk filled (%q); %d starts in all, %d while full; failed runs: %s",
		failedAfter.Round(time.Millisecond), first.ExitErr(), sup.Starts(), startsFull, summarize(failures))
	fig.add("errors logged: %s", errorLines(string(logs)))
	fig.add("broker kept accepting while full: %d messages in 5 s", acceptedFull1-acceptedFull0)
	fig.add("ingest resumed %v after the filler was deleted", resume.Round(time.Millisecond))
	fig.add("wal verify: %s; torn-tail mentions in the logs %d; quarantined files %d", strings.ReplaceAll(verify, "\n", " "), torn, len(quarantine))
	fig.add("readings %d: WAL missing %d, InfluxDB missing %d, extra %d; windows exact %d; reconcile drift %d of %d",
		infDiff.Expected, len(walDiff.Missing), len(infDiff.Missing), len(infDiff.Extra), win.Windows, rep.Total.Drift, rep.Total.Checked)
}

func summarize(ss []string) string {
	count := map[string]int{}
	var order []string
	for _, s := range ss {
		if count[s] == 0 {
			order = append(order, s)
		}
		count[s]++
	}
	var b strings.Builder
	for i, s := range order {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(s)
		if count[s] > 1 {
			b.WriteString(" ×" + strconv.Itoa(count[s]))
		}
	}
	if b.Len() == 0 {
		return "none"
	}
	return b.String()
}
