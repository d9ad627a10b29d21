package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/edged-io/edged/internal/servicetest"
	"github.com/edged-io/edged/sync/reconcile"
)

// TestSpeedAndBatchLayersAgree is the Lambda architecture end to end: the
// real edged ingests a dataset through mosquitto (with late readings and
// redelivered duplicates from a kill -9), ships it to the real InfluxDB,
// and edged-reconcile recomputes every complete window from the raw
// readings: no window drifts, late readings explain exactly the windows
// they touch, the rest are exact; a second run writes nothing.
func TestSpeedAndBatchLayersAgree(t *testing.T) {
	broker := servicetest.StartMosquitto(t, servicetest.MosquittoOptions{ExtraConfig: brokerLimits})
	influx := servicetest.StartInfluxd(t)
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "influx-token")
	if err := os.WriteFile(tokenFile, []byte(influx.Token), 0o600); err != nil {
		t.Fatal(err)
	}
	port := servicetest.FreePort(t)
	cfg := writeConfig(t, dir, broker.URL, port, fmt.Sprintf("ship: {url: %q, bucket: %q, token_file: %q, flush_interval: 50ms}\n",
		influx.URL, influx.Bucket, tokenFile))
	d := startEdged(t, cfg, port)
	ds := newDataset(4, 300)
	pub := publisher(t, broker.URL)
	publish(t, pub, ds, func(n int) {
		if n == 600 {
			d.kill(t) // redelivery: duplicates the edge counts, InfluxDB overwrites
			d = startEdged(t, cfg, port)
		}
	})
	// Late readings: new identities 20 s behind each series' frontier.
	for i := range ds.sensors {
		tok := pub.Publish(fmt.Sprintf("sensors/s%d", i), 1, false,
			fmt.Sprintf(`{"ts":%d,"value":%d.5}`, ds.ts(i, 100)+50, 40+i))
		tok.Wait()
	}
	checkWindows(t, d, ds)      // the sentinel closed every data window: values exact
	time.Sleep(2 * time.Second) // the amendments for the late readings come with the next tick
	d.stop(t)                   // the final ship

	run := func() reconcile.Report {
		t.Helper()
		var out, errb bytes.Buffer
		code := reconcile.Main(context.Background(), []string{"run", "--url", influx.URL, "--bucket", influx.Bucket,
			"--token-file", tokenFile, "--json", "--progress", "0"}, &out, &errb)
		var rep reconcile.Report
		if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
			t.Fatalf("reconcile exit %d, report %v\n%s\n%s", code, err, out.String(), errb.String())
		}
		if code != 0 || rep.Total.Drift != 0 {
			t.Fatalf("reconcile exit %d: %+v\ndrift: %+v\n%s", code, rep.Total, rep.Drift, errb.String())
		}
		return rep
	}
	first := run()
	tot := first.Total
	// Every data window: readings are 100 ms apart, so R readings fill R/10
	// 1s windows and R/100 10s windows per series (the sentinels' own
	// windows never close).
	if want := ds.sensors * (ds.readings/10 + ds.readings/100); tot.Checked != want || tot.Pending != 0 {
		t.Fatalf("first run: %+v", tot)
	}
	// Each new late reading lands in one 1s and one 10s window; late
	// redelivered copies (counted late at the edge, overwritten centrally)
	// change nothing, so their windows are exact.
	if tot.Explained != 2*ds.sensors || tot.Causes.Late < uint64(2*ds.sensors) {
		t.Fatalf("late readings should explain %d windows: %+v", 2*ds.sensors, tot)
	}
	if second := run(); second.Total.Written != 0 || second.Total.Checked != 0 {
		t.Fatalf("a second run did work: %+v", second.Total)
	}
	t.Logf("reconciled %d windows: %d exact, %d explained by late readings (%d late, %d duplicates counted at the edge)",
		tot.Checked, tot.Exact, tot.Explained, tot.Causes.Late, tot.Causes.Duplicates)
}
