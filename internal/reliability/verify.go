package reliability

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/edged-io/edged"
	"github.com/edged-io/edged/sync/reconcile"
	"github.com/edged-io/edged/wal"
)

// Identity is a reading's identity within one device: series and event
// time (ms).
type Identity struct {
	Series string
	Time   int64
}

// Point is what a store holds for one identity.
type Point struct {
	Value  float64
	Copies int // how many records (WAL) or rows (InfluxDB) hold it
	// Values of every copy (readings stamped with the ingest time can
	// share a millisecond).
	Values []float64
}

// WALReadings reads every reading of the log in dataDir/wal (read-only,
// safe beside a stopped or running daemon), by identity.
func WALReadings(dataDir string) (map[Identity]Point, error) {
	l, err := wal.OpenReadOnly(wal.Options{Dir: filepath.Join(dataDir, "wal")})
	if err != nil {
		return nil, err
	}
	defer l.Close()
	r := l.NewReader(1)
	defer r.Close()
	out := map[Identity]Point{}
	var rs []edged.Reading
	for {
		rec, err := r.Next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		var gap *wal.GapError
		if errors.As(err, &gap) {
			return out, fmt.Errorf("the log has a gap: %v", gap)
		}
		if err != nil {
			return out, err
		}
		if edged.Kind(rec.Data) != edged.KindReadings {
			continue
		}
		rs, err = edged.DecodeRecord(rs[:0], rec.Data, rec.LSN)
		if err != nil {
			return out, fmt.Errorf("record %d: %w", rec.LSN, err)
		}
		for _, x := range rs {
			id := Identity{x.Series, x.Time / 1e6}
			p := out[id]
			p.Value = x.Value
			p.Copies++
			p.Values = append(p.Values, x.Value)
			out[id] = p
		}
	}
}

// VerifyWAL runs `edged wal verify` on dataDir and returns its output; it
// fails t when the command reports corruption.
func VerifyWAL(t testing.TB, bin, dataDir string) string {
	t.Helper()
	out, err := exec.Command(bin, "wal", "verify", "--data-dir", dataDir).CombinedOutput()
	if err != nil {
		t.Fatalf("edged wal verify: %v\n%s", err, out)
	}
	return strings.TrimSpace(string(out))
}

// Influx queries an InfluxDB 1.8 server with InfluxQL (GET /query,
// chunked).
type Influx struct {
	URL, Database string
}

var influxClient = &http.Client{Timeout: 2 * time.Minute, Transport: &http.Transport{Proxy: nil}}

// Select runs an InfluxQL query and calls fn for every row of every
// series, with the series' tags. Times are Unix ms.
func (x Influx) Select(q string, fn func(tags map[string]string, row []any)) error {
	v := url.Values{"db": {x.Database}, "q": {q}, "epoch": {"ms"}, "chunked": {"true"}, "chunk_size": {"20000"}}
	resp, err := influxClient.Get(x.URL + "/query?" + v.Encode())
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("influx %q: %s: %s", q, resp.Status, b)
	}
	dec := json.NewDecoder(resp.Body)
	for {
		var chunk struct {
			Error   string `json:"error"`
			Results []struct {
				Error  string `json:"error"`
				Series []struct {
					Tags   map[string]string `json:"tags"`
					Values [][]any           `json:"values"`
				} `json:"series"`
			} `json:"results"`
		}
		if err := dec.Decode(&chunk); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return err
		}
		if chunk.Error != "" {
			return errors.New(chunk.Error)
		}
		for _, r := range chunk.Results {
			if r.Error != "" {
				return errors.New(r.Error)
			}
			for _, s := range r.Series {
				for _, row := range s.Values {
					fn(s.Tags, row)
				}
			}
		}
	}
}

// Readings returns the points of a measurement (edged_reading,
// edged_untrusted) of one device, by identity.
func (x Influx) Readings(measurement, device string) (map[Identity]Point, error) {
	out := map[Identity]Point{}
	err := x.Select(fmt.Sprintf(`SELECT "value" FROM %q WHERE "device" = '%s' GROUP BY "series"`, measurement, device),
		func(tags map[string]string, row []any) {
			ts, _ := row[0].(float64)
			v, _ := row[1].(float64)
			id := Identity{tags["series"], int64(ts)}
			p := out[id]
			p.Value = v
			p.Copies++
			p.Values = append(p.Values, v)
			out[id] = p
		})
	return out, err
}

// Diff compares a store's readings with the expected ones.
type Diff struct {
	Expected, Got int
	// Missing are expected identities the store lacks; Extra identities
	// it holds that were never published (a reading stored under another
	// identity: a duplicate by another name); WrongValue differ in value;
	// Duplicated identities are held more than once (InfluxDB cannot, by
	// construction; the WAL can, for redelivered messages).
	Missing, Extra, WrongValue []Identity
	Duplicated                 int
}

// OK reports no loss, no extra point and no wrong value.
func (d Diff) OK() bool { return len(d.Missing) == 0 && len(d.Extra) == 0 && len(d.WrongValue) == 0 }

func (d Diff) String() string {
	f := func(ids []Identity) string {
		sort.Slice(ids, func(i, j int) bool {
			return ids[i].Series < ids[j].Series || ids[i].Series == ids[j].Series && ids[i].Time < ids[j].Time
		})
		if len(ids) > 5 {
			return fmt.Sprintf("%v … (%d)", ids[:5], len(ids))
		}
		return fmt.Sprint(ids)
	}
	return fmt.Sprintf("expected %d, got %d: missing %s, extra %s, wrong value %s, %d duplicated",
		d.Expected, d.Got, f(d.Missing), f(d.Extra), f(d.WrongValue), d.Duplicated)
}

// Compare diffs got against want.
func Compare(want, got map[Identity]Point) Diff {
	d := Diff{Expected: len(want), Got: len(got)}
	for id, w := range want {
		g, ok := got[id]
		switch {
		case !ok:
			d.Missing = append(d.Missing, id)
		case g.Value != w.Value:
			d.WrongValue = append(d.WrongValue, id)
		}
	}
	for id, g := range got {
		if _, ok := want[id]; !ok {
			d.Extra = append(d.Extra, id)
		}
		if g.Copies > 1 {
			d.Duplicated++
		}
	}
	return d
}

// Want returns the identities and values of readings [0, n) of every
// sensor, and of the sentinels after n when sentinels is true.
func (l Load) Want(n int, sentinels bool) map[Identity]Point {
	out := map[Identity]Point{}
	for i := range l.Sensors {
		for seq := range n {
			out[Identity{l.Series(i), l.Time(seq)}] = Point{Value: l.Value(i, seq), Copies: 1}
		}
		if sentinels {
			out[Identity{l.Series(i), l.SentinelTime(n)}] = Point{Copies: 1}
		}
	}
	return out
}

// WindowReport sums up a windows check.
type WindowReport struct {
	Windows int
	// LeftOut counts the copies edged recognised and kept out of the
	// values: duplicates, and redelivered copies that came after their
	// window closed (counted late).
	LeftOut float64
	// Missing windows were not served; Wrong ones were served with other
	// aggregates or unexpected accounting; Extra ones were not expected.
	Missing, Wrong, Extra int
	// Problems describes the first few differences.
	Problems []string
}

func (r *WindowReport) problem(format string, args ...any) {
	if len(r.Problems) < 10 {
		r.Problems = append(r.Problems, fmt.Sprintf(format, args...))
	}
}

// CheckWindows compares the windows edged serves with the exact aggregates
// (CompareWindows) and fails t on any difference.
func CheckWindows(t testing.TB, e *Edged, l Load, n int, sizes []time.Duration, timeout time.Duration) WindowReport {
	t.Helper()
	rep := CompareWindows(t, e, l, n, sizes, timeout)
	if rep.Missing+rep.Wrong+rep.Extra > 0 {
		t.Errorf("windows: %d missing, %d wrong, %d unexpected of %d:\n%s", rep.Missing, rep.Wrong, rep.Extra,
			rep.Windows, strings.Join(rep.Problems, "\n"))
	}
	return rep
}

// CompareWindows waits (up to timeout) until edged serves every expected
// window of the load for each size, then compares count, sum, min and max
// exactly and checks that no window is served unexpectedly and that none
// counts conflicts or untrusted readings.
func CompareWindows(t testing.TB, e *Edged, l Load, n int, sizes []time.Duration, timeout time.Duration) WindowReport {
	t.Helper()
	var rep WindowReport
	deadline := time.Now().Add(timeout)
	for _, size := range sizes {
		for series, want := range l.Expected(n, size) {
			var got map[int64]Window
			for {
				var err error
				got, err = e.Windows(series, size)
				if err == nil && len(got) >= len(want) || time.Now().After(deadline) {
					if err != nil {
						t.Fatalf("windows of %s: %v", series, err)
					}
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			for start, w := range want {
				rep.Windows++
				g, ok := got[start]
				if !ok {
					rep.Missing++
					rep.problem("%s %v window %d missing (%d of %d served)", series, size, start, len(got), len(want))
					continue
				}
				f := g.Fields
				if int(f["count"]) != w.Count || f["sum"] != w.Sum || f["min"] != w.Min || f["max"] != w.Max ||
					f["conflicts"] != 0 || f["untrusted"] != 0 {
					rep.Wrong++
					rep.problem("%s %v window %d: count %v sum %v min %v max %v, want %+v (fields %v)",
						series, size, start, f["count"], f["sum"], f["min"], f["max"], w, f)
				}
				rep.LeftOut += f["duplicates"] + f["late"]
			}
			for start := range got {
				if _, ok := want[start]; !ok {
					rep.Extra++
					rep.problem("%s %v: unexpected window %d: %v", series, size, start, got[start].Fields)
				}
			}
		}
	}
	return rep
}

// WaitShipped waits until the shipper has confirmed every durable record
// of both logs: nothing left to ship.
func WaitShipped(t testing.TB, e *Edged, timeout time.Duration) {
	t.Helper()
	var st any
	err := waitFor(timeout, func() bool {
		s, err := e.Ship()
		st = s
		// A tick may have just been appended: lag 1 is drained.
		return err == nil && s.LagRecords <= 1 && s.EstimatesLagRecords <= 1 && !s.LastErrorAt.After(s.LastShipped)
	})
	if err != nil {
		t.Fatalf("shipping did not drain within %v: %+v", timeout, st)
	}
}

// Reconcile runs the batch job (sync/reconcile, what edged-reconcile run
// does) for one device and fails t unless it completes with no drift and
// nothing pending. It returns the report.
func Reconcile(t testing.TB, influxURL, bucket, token, device string) *reconcile.Report {
	t.Helper()
	job, err := reconcile.New(reconcile.Options{URL: influxURL, Bucket: bucket, Token: token, Devices: []string{device}})
	if err != nil {
		t.Fatal(err)
	}
	defer job.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	rep, err := job.Run(ctx)
	if err != nil {
		t.Fatalf("reconcile: %v (report %+v)", err, rep)
	}
	if !rep.Complete || rep.Total.Drift != 0 || rep.Total.Pending != 0 {
		t.Fatalf("reconcile: complete %v, %+v, drift %+v, errors %v", rep.Complete, rep.Total, rep.Drift, rep.Errors)
	}
	return rep
}

// CheckServed compares the serving layer (reconcile Query: exact rows
// where the batch view has them) with the load's exact aggregates for
// every series and size; every row must come from the batch view.
func CheckServed(t testing.TB, influxURL, bucket, token, device string, l Load, n int, sizes []time.Duration) int {
	t.Helper()
	job, err := reconcile.New(reconcile.Options{URL: influxURL, Bucket: bucket, Token: token})
	if err != nil {
		t.Fatal(err)
	}
	defer job.Close()
	rows := 0
	for _, size := range sizes {
		for series, want := range l.Expected(n, size) {
			served, err := job.Query(context.Background(), reconcile.QueryRequest{Device: device, Series: series, Window: size,
				From: time.UnixMilli(l.T0), To: time.UnixMilli(l.Time(n - 1)).Add(size)})
			if err != nil {
				t.Fatal(err)
			}
			if len(served) != len(want) {
				t.Errorf("served %s %v: %d rows, want %d", series, size, len(served), len(want))
			}
			for _, r := range served {
				w, ok := want[r.Start.UnixMilli()]
				if !ok {
					t.Errorf("served %s %v: unexpected row %v", series, size, r.Start)
					continue
				}
				if r.Source != reconcile.SourceBatch || int(r.Count) != w.Count || r.Values["sum"] != w.Sum ||
					r.Values["min"] != w.Min || r.Values["max"] != w.Max {
					t.Errorf("served %s %v %v: %s count %v %v, want %+v", series, size, r.Start, r.Source, r.Count, r.Values, w)
				}
				rows++
			}
		}
	}
	return rows
}
