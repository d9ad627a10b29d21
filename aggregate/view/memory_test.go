package view

import (
	"fmt"
	"runtime"
	"testing"
	"time"
)

// TestMemoryBounded writes six hours of event time of 100 series at the
// default sizes (10 s, 1 m, 1 h; 126,000 windows) and samples the live
// heap every ten minutes. With hour-long partitions (the store before
// windowsPerPartition) the heap reached 539 KiB a series after the first
// hour and stayed there (tstorage kept 1–3 hours of windows in memory);
// the bound now is the newest partitions in memory (≤ 3 × 32 windows a
// series and size) plus ~240 bytes a series for each flushed partition.
func TestMemoryBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 126,000 windows")
	}
	const series = 100
	sizes := []time.Duration{10 * time.Second, time.Minute, time.Hour}
	s, err := Open(t.TempDir(), sizes, DefaultKeep)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	heap := func() float64 { // KiB a series
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return float64(m.HeapAlloc) / series / 1024
	}
	base := heap()
	step := int64(10 * time.Second)
	t0 := time.Now().Add(-7 * time.Hour).Truncate(time.Hour).UnixNano()
	hourMax := make([]float64, 7)
	for t1 := t0; t1 < t0+int64(6*time.Hour); t1 += step {
		var rows []Row
		for _, size := range sizes {
			if (t1+step)%int64(size) != 0 {
				continue
			}
			start := t1 + step - int64(size)
			for i := range series {
				v := make([]float64, len(Fields))
				for j := range v {
					v[j] = float64(j)
				}
				rows = append(rows, Row{Device: "pi", Series: fmt.Sprintf("sensor.%03d", i), Size: size,
					Start: start, End: start + int64(size), Values: v})
			}
		}
		if len(rows) > 0 {
			if err := s.Put(rows); err != nil {
				t.Fatal(err)
			}
		}
		if (t1-t0)%int64(time.Minute) == 0 {
			if err := s.Sync(); err != nil {
				t.Fatal(err)
			}
		}
		if (t1-t0)%int64(10*time.Minute) == 0 {
			h := int((t1 - t0) / int64(time.Hour))
			hourMax[h+1] = max(hourMax[h+1], heap()-base)
		}
	}
	t.Logf("live heap per series, max in each event hour: %.0f KiB", hourMax[1:])
	// Bounds: in memory ≤ 2 sizes × 96 windows × 16 points × ~80 bytes
	// (the hour size has 6 windows) ≈ 250 KiB; flushed partitions 6 h ×
	// (11.25 + 1.9) an hour × 240 bytes ≈ 18 KiB.
	if worst := max(hourMax[1], hourMax[2], hourMax[3], hourMax[4], hourMax[5], hourMax[6]); worst > 280 {
		t.Errorf("live heap reached %.0f KiB a series (bound 280)", worst)
	}
	// From hour 3 to hour 6 only flushed partitions (3 h × 13 × 240 bytes)
	// and the hour size's windows (3 × 1.3 KiB) accumulate, ~13 KiB a
	// series; ten-second windows kept in memory would add 450 KiB an hour.
	if grew := hourMax[6] - hourMax[3]; grew > 40 {
		t.Errorf("live heap grew %.0f KiB a series from hour 3 to hour 6 (bound 40): windows accumulate in memory", grew)
	}
	if st := s.Stats(); st.Lanes != len(sizes) || st.SideRows != 0 {
		t.Errorf("stats %+v: in-order windows should fill one lane a size and no side rows", st)
	}
}
