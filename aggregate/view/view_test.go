package view

import (
	"math"
	"testing"
	"time"
)

func row(series string, size time.Duration, start int64, count, late float64) Row {
	v := nanRow()
	v[FieldIndex("count")] = count
	v[FieldIndex("sum")] = count * 2
	v[FieldIndex("min")] = -5
	v[FieldIndex("late")] = late
	return Row{Device: "pi", Series: series, Unit: "°C", Size: size, Start: start, End: start + int64(size), Values: v}
}

func TestPutQueryMergeAndReopen(t *testing.T) {
	dir := t.TempDir()
	sizes := []time.Duration{10 * time.Second, time.Minute}
	s, err := Open(dir, sizes, 0)
	if err != nil {
		t.Fatal(err)
	}
	t0 := int64(1_699_999_200) * int64(time.Second) // aligned to the hour
	var rows []Row
	for i := range 30 {
		rows = append(rows, row("greenhouse/t", 10*time.Second, t0+int64(i)*int64(10*time.Second), float64(10+i), 0))
	}
	rows = append(rows, row("greenhouse/t", time.Minute, t0, 300, 0))
	if err := s.Put(rows); err != nil {
		t.Fatal(err)
	}
	// A replay after a crash writes window 3 again; a late reading amends window 5.
	if err := s.Put([]Row{rows[3], row("greenhouse/t", 10*time.Second, rows[5].Start, rows[5].Values[0], 2)}); err != nil {
		t.Fatal(err)
	}
	if err := s.Put([]Row{row("x", time.Hour, t0, 1, 0)}); err == nil {
		t.Fatal("a size the store does not have was accepted")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s, err = Open(dir, sizes, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := s.Query("pi", "greenhouse/t", 10*time.Second, t0, t0+int64(30*10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 30 {
		t.Fatalf("%d windows, want 30 (duplicates must merge)", len(got))
	}
	for i, r := range got {
		if r.Start != rows[i].Start || r.Values[0] != float64(10+i) || r.Values[FieldIndex("min")] != -5 || r.Unit != "°C" {
			t.Fatalf("window %d: %+v", i, r)
		}
		wantLate := 0.0
		if i == 5 {
			wantLate = 2
		}
		if r.Values[FieldIndex("late")] != wantLate || !math.IsNaN(r.Values[FieldIndex("p99")]) {
			t.Fatalf("window %d accounting: late %v p99 %v", i, r.Values[FieldIndex("late")], r.Values[FieldIndex("p99")])
		}
	}
	part, _ := s.Query("pi", "greenhouse/t", 10*time.Second, t0+int64(20*10*time.Second), t0+int64(22*10*time.Second))
	if len(part) != 2 {
		t.Fatalf("range query returned %d windows, want 2", len(part))
	}
	if m, _ := s.Query("pi", "greenhouse/t", time.Minute, t0, t0+int64(time.Hour)); len(m) != 1 || m[0].Values[0] != 300 {
		t.Fatalf("1m windows: %+v", m)
	}
	if _, err := s.Query("pi", "greenhouse/t", time.Hour, t0, t0+1); err == nil {
		t.Fatal("query of an unconfigured size succeeded")
	}
	series := s.Series()
	if len(series) != 1 || series[0].Series != "greenhouse/t" || len(series[0].Sizes) != 2 {
		t.Fatalf("series index after reopen: %+v", series)
	}
}

// TestRewritesAreVisibleBeforeAFlush: tstorage hides points written out of
// time order until their partition is flushed; an amendment rewriting an
// older window must be visible at once all the same.
func TestRewritesAreVisibleBeforeAFlush(t *testing.T) {
	s, err := Open(t.TempDir(), []time.Duration{10 * time.Second}, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	t0 := int64(1_699_999_200) * int64(time.Second) // aligned to the hour
	var rows []Row
	for i := range 10 {
		rows = append(rows, row("s", 10*time.Second, t0+int64(i)*int64(10*time.Second), 5, 0))
	}
	if err := s.Put(rows); err != nil {
		t.Fatal(err)
	}
	if err := s.Put([]Row{row("s", 10*time.Second, rows[3].Start, 5, 4)}); err != nil {
		t.Fatal(err)
	}
	got, err := s.Query("pi", "s", 10*time.Second, t0, t0+int64(100*time.Second))
	if err != nil || len(got) != 10 {
		t.Fatalf("%d rows, %v", len(got), err)
	}
	if late := got[3].Values[FieldIndex("late")]; late != 4 {
		t.Fatalf("the amended window reads late=%v before a flush, want 4", late)
	}
}
