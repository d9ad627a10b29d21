package view

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// model is what a store must return: every row put, merged per window.
type model map[windowKey]Row

func (m model) put(r Row) {
	k := windowKey{seriesSize{r.Device, r.Series, r.Size}, r.Start}
	m[k] = mergeRow(m[k], r)
}

// check compares every series and size of the model with the store.
func (m model) check(t *testing.T, s *Store, when string) {
	t.Helper()
	counted := 0
	for _, n := range s.sideN {
		counted += n
	}
	if counted != len(s.side) {
		t.Fatalf("%s: side rows counted per size %d, held %d", when, counted, len(s.side))
	}
	want := map[seriesSize][]Row{}
	for k, r := range m {
		want[k.seriesSize] = append(want[k.seriesSize], r)
	}
	for ss, rows := range want {
		slices.SortFunc(rows, func(a, b Row) int { return int(a.Start/int64(time.Second) - b.Start/int64(time.Second)) })
		got, err := s.Query(ss.device, ss.series, ss.size, math.MinInt64+1, math.MaxInt64)
		if err != nil {
			t.Fatalf("%s: query %v: %v", when, ss, err)
		}
		if len(got) != len(rows) {
			missing := 0
			have := map[int64]bool{}
			for _, g := range got {
				have[g.Start] = true
			}
			for _, r := range rows {
				if !have[r.Start] {
					missing++
				}
			}
			t.Fatalf("%s: %s/%s %v: %d windows, want %d (%d missing)", when, ss.device, ss.series, ss.size, len(got), len(rows), missing)
		}
		for i := range rows {
			if got[i].Start != rows[i].Start || !sameValues(got[i].Values, rows[i].Values) {
				t.Fatalf("%s: %s %v window %d:\n got %v\nwant %v", when, ss.series, ss.size, i, got[i].Values, rows[i].Values)
			}
		}
	}
}

func sameValues(a, b []float64) bool {
	return slices.EqualFunc(a, b, func(x, y float64) bool { return x == y || math.IsNaN(x) && math.IsNaN(y) })
}

// killCopy copies dir as a kill -9 right now would leave it (the store
// writes through to the OS), for opening beside the running store.
func killCopy(t *testing.T, dir string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "copy")
	if out, err := exec.Command("cp", "-a", dir, dst).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v: %s", err, out)
	}
	return dst
}

func wrow(series string, size time.Duration, start int64, count float64, lsn float64) Row {
	v := nanRow()
	v[FieldIndex("count")] = count
	v[FieldIndex("sum")] = count * 1.5
	v[FieldIndex("min")] = -count
	v[FieldIndex("close_lsn")] = lsn
	v[FieldIndex("applied_lsn")] = lsn
	return Row{Device: "pi", Series: series, Unit: "°C", Size: size, Start: start, End: start + int64(size), Values: v}
}

// TestMixedEventTimeFronts puts windows of series whose event times
// differ wildly (now, an hour behind, a day behind, a Pi booted at 1970,
// one ten years ahead, the epoch itself) in interleaved batches, with
// amendments, over several partition durations; every window must be
// served, while running, after a kill (the files as they are after Sync)
// and after a clean reopen. tstorage alone drops most of them.
func TestMixedEventTimeFronts(t *testing.T) {
	size := 10 * time.Second
	sizes := []time.Duration{size, time.Minute}
	now := time.Date(2026, 11, 24, 1, 0, 0, 0, time.UTC).UnixNano()
	fronts := map[string]int64{
		"now":      now,
		"skewed":   now - int64(30*time.Second), // within slack of "now"
		"hour":     now - int64(time.Hour),
		"day":      now - int64(24*time.Hour),
		"boot1970": int64(20 * time.Second),
		"future":   now + int64(10*365*24*time.Hour),
		"epoch":    0,
	}
	names := []string{"now", "skewed", "hour", "day", "boot1970", "future", "epoch"}
	dir := t.TempDir()
	s, err := Open(dir, sizes, 0)
	if err != nil {
		t.Fatal(err)
	}
	m := model{}
	rng := rand.New(rand.NewPCG(1, 2))
	lsn := 1.0
	// 3 hours of 10 s windows: past tstorage's one-hour partitions.
	for step := range 3 * 360 {
		var batch []Row
		for _, name := range names {
			if name == "epoch" && step > 0 {
				continue
			}
			start := fronts[name] + int64(step)*int64(size)
			r := wrow(name, size, start, float64(1+step%7), lsn)
			lsn++
			batch = append(batch, r)
			if step%6 == 5 {
				ms := start - int64(time.Minute)
				ms -= ms % int64(time.Minute)
				r := wrow(name, time.Minute, ms, 6, lsn)
				lsn++
				batch = append(batch, r)
			}
			// An amendment of an earlier window now and then.
			if step > 3 && rng.IntN(10) == 0 {
				a := wrow(name, size, start-int64(3*size), float64(1+(step-3)%7), lsn)
				a.Values[FieldIndex("late")] = float64(1 + rng.IntN(3))
				lsn++
				batch = append(batch, a)
			}
		}
		rng.Shuffle(len(batch), func(i, j int) {
			// Keep each series' new windows in order (the stream emits
			// them so); shuffle across series.
			if batch[i].Series != batch[j].Series {
				batch[i], batch[j] = batch[j], batch[i]
			}
		})
		if err := s.Put(batch); err != nil {
			t.Fatalf("step %d: %v", step, err)
		}
		for _, r := range batch {
			m.put(r)
		}
		if step%120 == 0 {
			if err := s.Sync(); err != nil {
				t.Fatal(err)
			}
		}
	}
	m.check(t, s, "running")
	st := s.Stats()
	t.Logf("lanes %d, side rows %d", st.Lanes, st.SideRows)
	if st.Lanes > 2*maxLanes {
		t.Fatalf("%d lanes", st.Lanes)
	}
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	killed, err := Open(killCopy(t, dir), sizes, 0)
	if err != nil {
		t.Fatal(err)
	}
	if d := killed.Damaged(); len(d) > 0 {
		t.Fatalf("damaged after a kill: %v", d)
	}
	m.check(t, killed, "after kill -9")
	if err := killed.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(dir, sizes, 0)
	if err != nil {
		t.Fatal(err)
	}
	m.check(t, s, "reopened")
	// And it goes on taking windows, of the old fronts and new ones.
	var more []Row
	for i, name := range names[:5] {
		r := wrow(name, size, fronts[name]+int64(3*360)*int64(size), 9, lsn+float64(i))
		more = append(more, r)
	}
	more = append(more, wrow("late-gateway", size, now-int64(2*time.Hour), 3, lsn+10))
	if err := s.Put(more); err != nil {
		t.Fatal(err)
	}
	for _, r := range more {
		m.put(r)
	}
	m.check(t, s, "reopened and written")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestManyFronts: more fronts than lanes; the rest goes to the side store
// and is served, and kept.
func TestManyFronts(t *testing.T) {
	size := 10 * time.Second
	dir := t.TempDir()
	s, err := Open(dir, []time.Duration{size}, 0)
	if err != nil {
		t.Fatal(err)
	}
	m := model{}
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	for step := range 50 {
		var batch []Row
		for f := range 3 * maxLanes {
			r := wrow(fmt.Sprintf("f%02d", f), size, base-int64(f)*int64(24*time.Hour)+int64(step)*int64(size), 1, float64(step))
			batch = append(batch, r)
			m.put(r)
		}
		if err := s.Put(batch); err != nil {
			t.Fatal(err)
		}
	}
	m.check(t, s, "running")
	if st := s.Stats(); st.Lanes != maxLanes || st.SideRows == 0 {
		t.Fatalf("stats %+v: want %d lanes and some side rows", st, maxLanes)
	}
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	killed, err := Open(killCopy(t, dir), []time.Duration{size}, 0)
	if err != nil {
		t.Fatal(err)
	}
	m.check(t, killed, "after kill -9")
	killed.Close()
	s.Close()
}

// TestTornViewLogQuarantined: a torn record at the end of a lane's
// tstorage log (a power cut) no longer stops the store from opening: the
// lane is set aside, reported, and the store works.
func TestTornViewLogQuarantined(t *testing.T) {
	size := 10 * time.Second
	dir := t.TempDir()
	s, err := Open(dir, []time.Duration{size}, 0)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	for i := range 20 {
		if err := s.Put([]Row{wrow("a", size, t0+int64(i)*int64(size), 1, float64(i))}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	copyDir := killCopy(t, dir)
	s.Close()
	// The head's log: the newest generation's.
	segs, _ := filepath.Glob(filepath.Join(copyDir, size.String(), "g*", "wal", "0"))
	if len(segs) == 0 {
		t.Fatal("no head log")
	}
	seg := segs[len(segs)-1]
	f, err := os.OpenFile(seg, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte{'s', 0xff, 0x01}) // a record cut short, then garbage
	f.Close()
	s, err = Open(copyDir, []time.Duration{size}, 0)
	if err != nil {
		t.Fatalf("a torn view log stops the store: %v", err)
	}
	defer s.Close()
	if d := s.Damaged(); len(d) != 1 {
		t.Fatalf("damaged: %v", d)
	}
	if q, _ := os.ReadDir(filepath.Join(copyDir, quarantineDir)); len(q) != 1 {
		t.Fatalf("quarantine holds %d entries", len(q))
	}
	r := wrow("a", size, t0+int64(100)*int64(size), 1, 100)
	if err := s.Put([]Row{r}); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Query("pi", "a", size, r.Start, r.Start+1); err != nil || len(got) != 1 {
		t.Fatalf("after quarantine: %v, %v", got, err)
	}
}

// TestSkewWithinSlack: a window that starts a little before the newest one
// of its lane (another series' watermark is behind) stays in the lane and
// is served, also when it comes in a later insert than the newest one.
func TestSkewWithinSlack(t *testing.T) {
	size := 10 * time.Second
	s, err := Open(t.TempDir(), []time.Duration{size}, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	m := model{}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	for i := range 400 { // past a partition
		for _, r := range []Row{
			wrow("ahead", size, t0+int64(i)*int64(size), 1, float64(i)),
			wrow("behind", size, t0+int64(i-3)*int64(size), 2, float64(i)),
		} {
			if err := s.Put([]Row{r}); err != nil {
				t.Fatal(err)
			}
			m.put(r)
		}
	}
	m.check(t, s, "running")
	if st := s.Stats(); st.Lanes != 1 || st.SideRows != 0 {
		t.Fatalf("stats %+v: skew within slack should stay in one lane", st)
	}
}
