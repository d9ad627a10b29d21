package replay

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/edged-io/edged"
	"github.com/edged-io/edged/aggregate"
	"github.com/edged-io/edged/aggregate/stream"
	"github.com/edged-io/edged/aggregate/view"
	"github.com/edged-io/edged/wal"
)

// history is a deterministic ingest history with everything the
// aggregator has rules for: several devices and series (optionally one
// series in two units), readings out of order within the lateness and late beyond it,
// duplicates and conflicts, NaN, untrusted and absurd times, series that
// go idle and resume, a record with more than 64 late readings of one
// series in distinct windows (amendments overflowing), bad records, and a
// tick every second of processing time.
type history struct {
	series  int
	seconds int
	seed    uint64
	// twoUnits reports one series in two units. The aggregator keeps them
	// apart, but the view store keys rows by device and series, so the
	// two share rows, merged field by field (largest wins) in an order
	// that depends on when rows are flushed: only engine-level tests use
	// it.
	twoUnits bool
	// absurd adds readings an hour ahead and in 2001, untrusted, and a
	// burst of late readings up to 15 minutes back: the aggregator counts
	// them on their own windows (amendments), far from the others. The
	// view store does not keep such rows reliably: tstorage drops points
	// older than the first its head partition took (a store flushed often
	// loses more), and re-flushing a partition of the same time range
	// after a restart truncates a file it has mapped (SIGBUS). So only
	// engine-level tests use it; without it nothing is refused in the
	// first minute either.
	absurd bool
	// t0 is the first ingest time; default an hour ago, truncated.
	t0 int64
}

func (h history) t0OrDefault() int64 {
	if h.t0 != 0 {
		return h.t0
	}
	return time.Now().Add(-2 * time.Hour).Truncate(time.Hour).UnixNano()
}

func (h history) records() [][]byte {
	rng := rand.New(rand.NewPCG(h.seed, 99))
	t0 := h.t0OrDefault()
	type id struct{ dev, name, unit string }
	ids := make([]id, h.series)
	for i := range ids {
		ids[i] = id{fmt.Sprintf("pi-%d", i%3), fmt.Sprintf("room/%02d/temp", i), "°C"}
	}
	if h.twoUnits && h.series > 2 {
		ids[1] = id{ids[0].dev, ids[0].name, "°F"} // same series, another unit
	}
	var out [][]byte
	var prev []edged.Reading
	sec := int64(time.Second)
	for s := range h.seconds {
		now := t0 + int64(s)*sec
		// Each second, every series reads about once, in records of 1 to
		// 5 readings.
		var pending []edged.Reading
		for i, x := range ids {
			if i%7 == 3 && s%300 > 200 {
				continue // idle for 100 s of every 300
			}
			t := now + int64(rng.IntN(900))*int64(time.Millisecond)
			r := edged.Reading{Device: x.dev, Series: x.name, Unit: x.unit, Time: t, Ingest: t,
				Value: math.Round((20+5*math.Sin(float64(s+i)/30)+rng.NormFloat64())*100) / 100}
			k := rng.IntN(200)
			if s < 60 && !h.absurd {
				k = 200 // nothing the view store would write before its first window (see absurd)
			}
			switch k {
			case 0, 1, 2:
				r.Time -= int64(rng.IntN(4000)) * int64(time.Millisecond) // out of order, mostly within lateness
			case 3:
				r.Time -= 40 * sec // late
			case 4:
				r.Value = math.NaN()
			case 5:
				r.Flags = edged.ClockUnsynced
			case 6:
				if h.absurd {
					r.Time = t + int64(time.Hour) // absurdly ahead
				}
			case 7:
				if h.absurd {
					r.Time = 1_000_000_000 * sec // 2001: before MinTime
				}
			case 8:
				r.Value = -r.Value * 1e6 // spread the sketch
			}
			pending = append(pending, r)
		}
		if s > 0 && rng.IntN(20) == 0 && len(prev) > 1 {
			pending = append(pending, prev[0]) // exact duplicate
			c := prev[1]
			c.Value += 1
			pending = append(pending, c) // conflict
		}
		if s == h.seconds/2 && h.series > 0 && h.absurd {
			// One record: 70 late readings of one series in 70 distinct
			// old windows, more than the 64 amendments a series holds.
			var burst []edged.Reading
			for k := range 70 {
				x := ids[0]
				burst = append(burst, edged.Reading{Device: x.dev, Series: x.name, Unit: x.unit,
					Time: now - int64(200+10*k)*sec, Ingest: now, Value: float64(k)})
			}
			out = append(out, mustRecord(burst))
		}
		rng.Shuffle(len(pending), func(i, j int) { pending[i], pending[j] = pending[j], pending[i] })
		prev = pending
		for len(pending) > 0 {
			n := min(1+rng.IntN(5), len(pending))
			out = append(out, mustRecord(pending[:n]))
			pending = pending[n:]
		}
		switch s {
		case 17:
			out = append(out, []byte{byte(edged.KindReadings), 3, 0, 1}) // truncated
		case 18:
			out = append(out, []byte{42, 1, 2, 3}) // unknown kind
		case 19:
			out = append(out, []byte{byte(edged.KindTick)}) // bad tick
		}
		out = append(out, edged.AppendTick(nil, now+sec-1))
	}
	// A last tick an hour later closes everything.
	out = append(out, edged.AppendTick(nil, t0+int64(h.seconds)*sec+int64(time.Hour)))
	return out
}

func mustRecord(rs []edged.Reading) []byte {
	b, err := edged.AppendRecord(nil, rs)
	if err != nil {
		panic(err)
	}
	return b
}

// writeLog appends recs to the log in dir (created as needed).
func writeLog(t testing.TB, dir string, recs [][]byte) { writeLogSegments(t, dir, recs, 256<<10) }

func writeLogSegments(t testing.TB, dir string, recs [][]byte, segmentSize int64) {
	t.Helper()
	l, err := wal.Open(wal.Options{Dir: dir, Sync: wal.SyncNever, SegmentSize: segmentSize})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { l.Run(context.Background()); close(done) }()
	for i, r := range recs {
		lsn, err := l.Append(r)
		if err != nil {
			t.Fatal(err)
		}
		if i%200 == 199 { // batches of 200 at most: segments close near their size
			if err := l.WaitDurable(context.Background(), lsn); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	<-done
}

var testSizes = []time.Duration{10 * time.Second, time.Minute, 5 * time.Minute}

func testOptions() aggregate.Options {
	return aggregate.Options{Windows: testSizes, Lateness: 5 * time.Second, IdleAfter: 30 * time.Second}
}

// runLive runs the daemon's stream (version v1, checkpoint in
// DATA/aggregate, cursor "aggregator") over the whole log in dataDir and
// stops it.
func runLive(t testing.TB, dataDir string, o aggregate.Options) stream.Stats {
	t.Helper()
	lay := Layout{dataDir}
	l, err := wal.Open(wal.Options{Dir: lay.WAL(), Sync: wal.SyncNever})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	views, err := view.Open(view.VersionDir(lay.Views(), "v1"), sortedSizes(o), view.DefaultKeep)
	if err != nil {
		t.Fatal(err)
	}
	if err := EnsureLiveManifest(lay.Views(), "v1", o); err != nil {
		t.Fatal(err)
	}
	st, err := stream.New(stream.Options{Log: l, Aggregate: o, Dir: lay.Checkpoints("v1"), Views: views, CheckpointEvery: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	from := st.Stats().CheckpointLSN
	go func() { done <- st.Run(ctx) }()
	for target := l.DurableLSN(); from+st.Stats().Applied < target; {
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := views.Close(); err != nil {
		t.Fatal(err)
	}
	return st.Stats()
}

// rowsOf returns every row of a version, by series and size, read
// through a snapshot as any reader would.
func rowsOf(t testing.TB, dataDir, version string) map[string][]view.Row {
	t.Helper()
	root := Layout{dataDir}.Views()
	snap, err := view.OpenSnapshot(root, view.VersionDir(root, version))
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Close()
	sizes, _ := view.Sizes(view.VersionDir(root, version))
	out := map[string][]view.Row{}
	for _, s := range snap.Series() {
		for _, size := range sizes {
			rows, err := snap.Query(s.Device, s.Series, size, math.MinInt64, math.MaxInt64)
			if err != nil {
				t.Fatal(err)
			}
			if len(rows) > 0 {
				out[s.Device+"/"+s.Series+"/"+size.String()] = rows
			}
		}
	}
	return out
}

// sameRows compares two versions' rows bit for bit; fields lists the
// fields compared (nil: all).
func sameRows(t testing.TB, got, want map[string][]view.Row, fields ...string) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%d series×sizes, want %d", len(got), len(want))
	}
	idx := make([]int, 0, len(view.Fields))
	for i, f := range view.Fields {
		if len(fields) == 0 || contains(fields, f) {
			idx = append(idx, i)
		}
	}
	bad := 0
	for k, w := range want {
		g := got[k]
		if len(g) != len(w) {
			t.Errorf("%s: %d windows, want %d", k, len(g), len(w))
			bad++
			continue
		}
		for i := range w {
			if g[i].Start != w[i].Start || g[i].End != w[i].End {
				t.Errorf("%s: window %d is [%d, %d), want [%d, %d)", k, i, g[i].Start, g[i].End, w[i].Start, w[i].End)
				bad++
				break
			}
			for _, j := range idx {
				if math.Float64bits(g[i].Values[j]) != math.Float64bits(w[i].Values[j]) {
					t.Errorf("%s: window at %s: %s = %v, want %v", k, time.Unix(0, w[i].Start).UTC().Format(time.TimeOnly),
						view.Fields[j], g[i].Values[j], w[i].Values[j])
					bad++
				}
			}
		}
		if bad > 10 {
			t.Fatal("too many differences")
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func countRows(m map[string][]view.Row) int {
	n := 0
	for _, rows := range m {
		n += len(rows)
	}
	return n
}

func mustExist(t testing.TB, path string) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		t.Fatal(err)
	}
}

var _ = filepath.Join
