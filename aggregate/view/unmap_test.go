package view

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// mappings counts this process's memory mappings of files under dir, and
// of those the removed ones.
func mappings(t *testing.T, dir string) (all, deleted int) {
	t.Helper()
	b, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.Contains(line, dir) {
			all++
			if strings.HasSuffix(line, "(deleted)") {
				deleted++
			}
		}
	}
	return all, deleted
}

// TestRetentionAndMappings: retention removes the generations whose
// windows lie more than its span behind the lane's front, while running
// and at Open (where it opens none of them), and no partition stays
// mapped once removed or closed — tstorage itself never unmaps one.
func TestRetentionAndMappings(t *testing.T) {
	size := 10 * time.Millisecond // partitions of 32 windows (320 ms)
	dir := t.TempDir()
	lane := filepath.Join(dir, size.String())
	t0 := time.Now().Add(-time.Hour).Truncate(time.Second).UnixNano()
	w := 0
	put := func(s *Store, n int) {
		t.Helper()
		for range n {
			if err := s.Put([]Row{wrow("s", size, t0+int64(w)*int64(size), 1, float64(w))}); err != nil {
				t.Fatal(err)
			}
			w++
		}
		if err := s.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	gens := func() int {
		g, _ := filepath.Glob(filepath.Join(lane, genPrefix+"*"))
		return len(g)
	}
	count := func(s *Store) int {
		t.Helper()
		rows, err := s.Query("pi", "s", size, t0, t0+int64(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		return len(rows)
	}

	// Keep 10 s (1,000 windows): 300 windows stay, in ten or more
	// generations.
	s, err := Open(dir, []time.Duration{size}, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	put(s, 300)
	if n := count(s); n != 300 {
		t.Fatalf("%d windows, want 300", n)
	}
	if all, _ := mappings(t, lane); all < 9 {
		t.Fatalf("%d partitions mapped after 300 windows, want at least 9 (did tstorage's layout change?)", all)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if all, _ := mappings(t, lane); all != 0 {
		t.Errorf("%d partitions mapped after Close", all)
	}

	// Reopened keeping 640 ms (64 windows): Open removes what is past it,
	// and maps none of it.
	before := gens()
	s, err = Open(dir, []time.Duration{size}, time.Nanosecond) // the least: two partitions
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("generations: %d before reopening keeping 640 ms, %d after; windows %d", before, gens(), count(s))
	if after := gens(); after >= before-5 || after > 5 {
		t.Errorf("%d generations before Open, %d after: retention removed too few", before, after)
	}
	if _, deleted := mappings(t, lane); deleted != 0 {
		t.Errorf("%d removed partitions mapped after Open", deleted)
	}
	if n := count(s); n < 64 || n > 64+64 {
		t.Errorf("%d windows after Open, want the newest 64 and at most two partitions more", n)
	}

	// Running: rolls remove what falls behind, and Sync unmaps it.
	put(s, 300)
	if g := gens(); g > 6 {
		t.Errorf("%d generations: retention does not keep up", g)
	}
	if _, deleted := mappings(t, lane); deleted != 0 {
		t.Errorf("%d removed partitions still mapped after Sync", deleted)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if all, _ := mappings(t, lane); all != 0 {
		t.Errorf("%d partitions mapped after Close", all)
	}
}

// TestRetentionSurvivesAFutureFront: readings stamped ten years ahead (a
// clock stepped ahead) join the lane of the present and move its front;
// retention must not then remove the present's windows, while running or
// at Open (the clock-jump tests of the reliability suite found it did).
func TestRetentionSurvivesAFutureFront(t *testing.T) {
	size := time.Second // keeps 4,320 windows: 72 minutes
	dir := t.TempDir()
	s, err := Open(dir, []time.Duration{size}, 0)
	if err != nil {
		t.Fatal(err)
	}
	m := model{}
	now := time.Now().Truncate(time.Second).UnixNano()
	put := func(start int64, n int) {
		t.Helper()
		for i := range n {
			r := wrow("s", size, start+int64(i)*int64(size), 1, float64(i))
			if err := s.Put([]Row{r}); err != nil {
				t.Fatal(err)
			}
			m.put(r)
		}
		if err := s.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	put(now-int64(10*time.Minute), 200)                        // the present: six generations
	put(now+int64(10*365*24*time.Hour), 100)                   // ten years ahead, in the same lane
	put(now-int64(10*time.Minute)+int64(200*time.Second), 100) // the present again: a lane of its own
	m.check(t, s, "running")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s, err = Open(dir, []time.Duration{size}, 0); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	m.check(t, s, "reopened")
}

// TestQueryHoldsOffUnmap: a query that chose its databases before a roll
// retired one of them reads it after the Sync that would unmap it; Sync
// waits for the query (Store.reading), or the query would read unmapped
// memory and crash the process.
func TestQueryHoldsOffUnmap(t *testing.T) {
	size := 10 * time.Millisecond
	s, err := Open(t.TempDir(), []time.Duration{size}, time.Nanosecond) // keeps two partitions
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	t0 := time.Now().Add(-time.Hour).Truncate(time.Second).UnixNano()
	w := 0
	put := func(n int) {
		t.Helper()
		for range n {
			if err := s.Put([]Row{wrow("s", size, t0+int64(w)*int64(size), 1, float64(w))}); err != nil {
				t.Fatal(err)
			}
			w++
		}
	}
	put(100) // three generations
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	chosen, resume := make(chan struct{}), make(chan struct{})
	testHookQuery = func() { close(chosen); <-resume }
	defer func() { testHookQuery = nil }()
	result := make(chan error, 1)
	go func() {
		rows, err := s.Query("pi", "s", size, t0, t0+int64(time.Hour))
		if err == nil && len(rows) == 0 {
			err = fmt.Errorf("the query found nothing")
		}
		result <- err
	}()
	<-chosen
	testHookQuery = nil
	put(300) // retention retires the generations the query chose
	synced := make(chan error, 1)
	go func() { synced <- s.Sync() }() // unmaps them once no query reads
	select {
	case err := <-synced:
		t.Fatalf("Sync (unmapping) returned while a query was between choosing and reading its databases: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	close(resume)
	if err := <-result; err != nil {
		t.Fatal(err)
	}
	if err := <-synced; err != nil {
		t.Fatal(err)
	}
	if _, deleted := mappings(t, s.dir); deleted != 0 {
		t.Errorf("%d removed partitions still mapped after the Sync", deleted)
	}
}
