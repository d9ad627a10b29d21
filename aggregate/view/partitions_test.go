package view

import (
	"fmt"
	"math"
	"os"
	"strings"
	"testing"
	"time"
)

// TestManyPartitionsSurviveKill writes 11 hours of 10-second windows as
// fast as a replay or a backlog does, then opens a copy of the files as a
// kill -9 leaves them. With tstorage starting partitions itself, its log
// segments are named 0, 1, …, 10 and "the oldest" was removed by name
// order: from the tenth partition on, the head's own log went, and the
// copy lacked its last partition's 360 windows a series.
func TestManyPartitionsSurviveKill(t *testing.T) {
	sizes := []time.Duration{10 * time.Second, time.Minute}
	dir := t.TempDir()
	s, err := Open(dir, sizes, DefaultKeep)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const series, hours = 10, 11
	t0 := time.Now().Add(-48 * time.Hour).Truncate(time.Hour).UnixNano()
	for w := range hours * 360 {
		start := t0 + int64(w)*int64(10*time.Second)
		var rows []Row
		for i := range series {
			rows = append(rows, wrow(fmt.Sprintf("s%02d", i), 10*time.Second, start, 1, float64(w)))
			if w%6 == 5 {
				rows = append(rows, wrow(fmt.Sprintf("s%02d", i), time.Minute, start-int64(50*time.Second), 6, float64(w)))
			}
		}
		if err := s.Put(rows); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	check := func(s *Store, when string) {
		for _, size := range sizes {
			want := hours * int(time.Hour/size)
			for i := range series {
				got, err := s.Query("pi", fmt.Sprintf("s%02d", i), size, math.MinInt64+1, math.MaxInt64)
				if err != nil {
					t.Fatal(err)
				}
				if len(got) != want {
					t.Errorf("%s: s%02d %v: %d windows, want %d", when, i, size, len(got), want)
				}
			}
		}
	}
	check(s, "running")
	killed, err := Open(killCopy(t, dir), sizes, DefaultKeep)
	if err != nil {
		t.Fatal(err)
	}
	defer killed.Close()
	check(killed, "after kill -9")
}

// TestGenerationsOpenWhenRead: a start opens no rolled generation (after
// three days that took half a second); a query opens those its range
// meets, and reads the same windows as before the restart.
func TestGenerationsOpenWhenRead(t *testing.T) {
	const hours = 4
	s, t0 := reopenedWithWindows(t, hours*360)
	size := 10 * time.Second
	loaded := func() (open, all int) {
		for _, l := range s.dbs[size].lanes {
			for _, g := range l.closed {
				if g.dir == l.dir {
					continue // the lane directory itself: always open
				}
				all++
				if g.db != nil {
					open++
				}
			}
		}
		return open, all
	}
	open, all := loaded()
	if want := hours * 360 / windowsPerPartition; all < want {
		t.Fatalf("%d closed generations, want at least %d", all, want)
	}
	if open != 0 {
		t.Errorf("after Open: %d of %d rolled generations open, want 0", open, all)
	}
	last := t0 + int64(hours*360-1)*int64(size)
	got, err := s.Query("pi", "s", size, last, last+int64(size))
	if err != nil || len(got) != 1 {
		t.Fatalf("last window: %d rows, %v", len(got), err)
	}
	if open, _ := loaded(); open > 2 {
		t.Errorf("a query of one window opened %d generations", open)
	}
	got, err = s.Query("pi", "s", size, math.MinInt64+1, math.MaxInt64)
	if err != nil || len(got) != hours*360 {
		t.Fatalf("all windows: %d rows, want %d (%v)", len(got), hours*360, err)
	}
	if open, all := loaded(); open != all {
		t.Errorf("a query of everything opened %d of %d generations", open, all)
	}
}

// TestRemovedGenerationIsAnError: a rolled generation whose directory is
// gone when a query first reads it fails the query (tstorage would make it
// anew and read it as empty), and the failure is kept, not retried.
func TestRemovedGenerationIsAnError(t *testing.T) {
	s, t0 := reopenedWithWindows(t, 3*windowsPerPartition)
	size := 10 * time.Second
	var victim string
	for _, l := range s.dbs[size].lanes {
		for _, g := range l.closed {
			if g.dir != l.dir && g.min <= t0 && t0 <= g.max {
				victim = g.dir
			}
		}
	}
	if victim == "" {
		t.Fatal("no rolled generation holds the first window")
	}
	if err := os.RemoveAll(victim); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		got, err := s.Query("pi", "s", size, t0, t0+int64(size))
		if err == nil || !strings.Contains(err.Error(), victim) {
			t.Fatalf("query of a removed generation: %d rows, err %v; want an error naming %s", len(got), err, victim)
		}
	}
	if _, err := os.Stat(victim); err == nil {
		t.Errorf("the query made %s anew", victim)
	}
}

// reopenedWithWindows writes n consecutive 10-second windows of one
// series, starting a day ago at t0, closes the store and opens it again
// (closed when the test ends).
func reopenedWithWindows(t *testing.T, n int) (*Store, int64) {
	t.Helper()
	size := 10 * time.Second
	dir := t.TempDir()
	s, err := Open(dir, []time.Duration{size}, DefaultKeep)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now().Add(-24 * time.Hour).Truncate(time.Hour).UnixNano()
	for w := range n {
		if err := s.Put([]Row{wrow("s", size, t0+int64(w)*int64(size), 1, float64(w))}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s, err = Open(dir, []time.Duration{size}, DefaultKeep); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, t0
}
