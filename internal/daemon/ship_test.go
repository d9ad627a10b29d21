package daemon

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	influxdb2 "github.com/influxdata/influxdb-client-go/v2"

	"github.com/edged-io/edged"
	"github.com/edged-io/edged/internal/servicetest"
	"github.com/edged-io/edged/wal"
)

// TestDaemonShipsToInfluxDB: with a central store configured, every sim
// reading in the log reaches the real InfluxDB exactly once, closed
// windows arrive as edge estimates, and the progress marker covers the
// log by the time the daemon has stopped (the final ship attempt).
func TestDaemonShipsToInfluxDB(t *testing.T) {
	influx := servicetest.StartInfluxd(t)
	tokenFile := filepath.Join(t.TempDir(), "influx-token")
	if err := os.WriteFile(tokenFile, []byte(influx.Token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := testConfig(t, fmt.Sprintf(`aggregate: {windows: [200ms, 1s], lateness: 50ms, idle_after: 300ms}
ship: {url: %q, bucket: %q, token_file: %q, flush_interval: 100ms}
`, influx.URL, influx.Bucket, tokenFile))
	_, stop := start(t, c)
	time.Sleep(2 * time.Second)
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}

	// What the log holds.
	l, err := wal.OpenReadOnly(wal.Options{Dir: filepath.Join(c.DataDir, "wal")})
	if err != nil {
		t.Fatal(err)
	}
	readings, last := 0, uint64(0)
	r := l.NewReader(1)
	for {
		rec, err := r.Next()
		if err != nil {
			break
		}
		last = rec.LSN
		if rs, err := edged.DecodeRecord(nil, rec.Data, rec.LSN); err == nil {
			readings += len(rs)
		}
	}
	r.Close()
	l.Close()

	client := influxdb2.NewClient(influx.URL, influx.Token)
	defer client.Close()
	q := client.QueryAPI(influx.Org)
	count := func(measurement, field string) int {
		t.Helper()
		res, err := q.Query(context.Background(), fmt.Sprintf(`from(bucket: %q) |> range(start: 0)
  |> filter(fn: (r) => r._measurement == %q and r._field == %q) |> group() |> count()`, influx.Bucket, measurement, field))
		if err != nil {
			t.Fatal(err)
		}
		defer res.Close()
		n := 0
		for res.Next() {
			n += int(res.Record().Value().(int64))
		}
		if res.Err() != nil {
			t.Fatal(res.Err())
		}
		return n
	}
	if got := count("edged_reading", "value"); got != readings || readings < 100 {
		t.Fatalf("InfluxDB holds %d readings, the log %d", got, readings)
	}
	if got := count("edged_window", "count"); got < 10 {
		t.Fatalf("only %d edge windows shipped", got)
	}
	res, err := q.Query(context.Background(), fmt.Sprintf(`from(bucket: %q) |> range(start: 0)
  |> filter(fn: (r) => r._measurement == "edged_progress" and r._field == "readings_lsn")`, influx.Bucket))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Close()
	var shipped int64
	for res.Next() {
		shipped = res.Record().Value().(int64)
	}
	if uint64(shipped) != last {
		t.Fatalf("progress says readings shipped through LSN %d, the log ends at %d", shipped, last)
	}
}
