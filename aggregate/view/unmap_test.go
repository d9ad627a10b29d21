package view

import (
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

// TestUnmapReleasesMappings: tstorage never unmaps a partition. Rolled
// heads whose retention has passed are removed and their mappings
// released at the next Sync, and Close releases the rest; the reopen at
// Open leaves none behind either.
func TestUnmapReleasesMappings(t *testing.T) {
	size := 10 * time.Millisecond // partitions of 320 ms, kept 640 ms (two partitions)
	dir := t.TempDir()
	s, err := Open(dir, []time.Duration{size}, 0)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now().Add(-time.Hour).Truncate(time.Second).UnixNano()
	w := 0
	put := func(n int) {
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
	put(200) // six rolls
	all, _ := mappings(t, dir)
	if all < 5 {
		t.Fatalf("%d partitions mapped after six rolls, want at least 5 (did the layout change?)", all)
	}
	time.Sleep(time.Second) // past retention
	put(100)
	if _, deleted := mappings(t, dir); deleted != 0 {
		t.Errorf("%d removed partitions still mapped after Sync", deleted)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if all, _ := mappings(t, dir); all != 0 {
		t.Errorf("%d partitions mapped after Close", all)
	}
	// Reopen (the log recovered and flushed) and close.
	s, err = Open(dir, []time.Duration{size}, 0)
	if err != nil {
		t.Fatal(err)
	}
	put(40)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if all, _ := mappings(t, dir); all != 0 {
		t.Errorf("%d partitions mapped after reopening and closing", all)
	}
	// Generations past retention when the store opens are removed then.
	time.Sleep(time.Second)
	s, err = Open(dir, []time.Duration{size}, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	gens, _ := filepath.Glob(filepath.Join(dir, size.String(), genPrefix+"*"))
	if len(gens) != 1 { // the new head
		t.Errorf("generations after opening past retention: %v, want only the new head", gens)
	}
}
