package sensors

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/edged-io/edged"
)

// memSink records what sources append.
type memSink struct {
	mu      sync.Mutex
	batches [][]edged.Reading
	fail    error
}

func (s *memSink) Append(rs []edged.Reading) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return 0, s.fail
	}
	s.batches = append(s.batches, append([]edged.Reading(nil), rs...))
	return uint64(len(s.batches)), nil
}

func (s *memSink) WaitDurable(context.Context, uint64) error { return nil }

func TestSimIsDeterministicAndPaced(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sim, err := NewSim(SimConfig{Series: 3, Interval: time.Second, Seed: 42}, "pi", nil)
		if err != nil {
			t.Fatal(err)
		}
		sink := &memSink{}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- sim.Run(ctx, sink) }()
		time.Sleep(4500 * time.Millisecond)
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if len(sink.batches) != 5 { // at 0, 1, 2, 3, 4 s
			t.Fatalf("%d batches in 4.5 s at 1/s, want 5", len(sink.batches))
		}
		for k, b := range sink.batches {
			if len(b) != 3 {
				t.Fatalf("batch %d has %d readings", k, len(b))
			}
			for i, r := range b {
				if r.Value != sim.Value(i, uint64(k)) || r.Series != []string{"sim/0", "sim/1", "sim/2"}[i] || r.Device != "pi" || r.Unit != "°C" {
					t.Fatalf("reading %d/%d = %+v", k, i, r)
				}
				if r.Time != r.Ingest || r.Flags != edged.TimeFromIngest {
					t.Fatalf("time fields %+v", r)
				}
			}
			if k > 0 && b[0].Time-sink.batches[k-1][0].Time != int64(time.Second) {
				t.Fatalf("batches %d apart", b[0].Time-sink.batches[k-1][0].Time)
			}
		}
	})
	other, _ := NewSim(SimConfig{Seed: 43}, "pi", nil)
	same, _ := NewSim(SimConfig{Seed: 42}, "pi", nil)
	again, _ := NewSim(SimConfig{Seed: 42}, "pi", nil)
	differs := false
	for k := range uint64(100) {
		if same.Value(1, k) != again.Value(1, k) {
			t.Fatal("same seed, different values")
		}
		differs = differs || same.Value(1, k) != other.Value(1, k)
	}
	if !differs {
		t.Fatal("different seeds, same values")
	}
}

func TestSimStopsOnSinkError(t *testing.T) {
	sim, _ := NewSim(SimConfig{}, "pi", nil)
	boom := errors.New("log failed")
	if err := sim.Run(t.Context(), &memSink{fail: boom}); !errors.Is(err, boom) {
		t.Fatalf("Run = %v, want the sink's error", err)
	}
	for _, c := range []SimConfig{{Series: -1}, {Interval: time.Microsecond}} {
		if _, err := NewSim(c, "pi", nil); err == nil {
			t.Errorf("NewSim(%+v) accepted it", c)
		}
	}
}

func writeZone(t *testing.T, root, name, typ, temp string) {
	t.Helper()
	d := filepath.Join(root, name)
	os.MkdirAll(d, 0o755)
	if typ != "" {
		os.WriteFile(filepath.Join(d, "type"), []byte(typ+"\n"), 0o644)
	}
	os.WriteFile(filepath.Join(d, "temp"), []byte(temp+"\n"), 0o644)
}

func TestThermalReadsZones(t *testing.T) {
	root := t.TempDir()
	writeZone(t, root, "thermal_zone0", "cpu-thermal", "48312")
	writeZone(t, root, "thermal_zone1", "", "-1500")
	writeZone(t, root, "thermal_zone2", "cpu-thermal", "50000")
	writeZone(t, root, "thermal_zone3", "gpu", "garbage")
	os.MkdirAll(filepath.Join(root, "cooling_device0"), 0o755)
	th, err := NewThermal(ThermalConfig{Root: root, Interval: time.Second}, "pi", nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"thermal/cpu-thermal", "thermal/thermal_zone1", "thermal/cpu-thermal-1", "thermal/gpu"}
	if got := th.Series(); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("series %v, want %v", got, want)
	}
	synctest.Test(t, func(t *testing.T) {
		sink := &memSink{}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- th.Run(ctx, sink) }()
		time.Sleep(time.Second / 2)
		cancel()
		<-done
		if len(sink.batches) != 1 {
			t.Fatalf("%d batches", len(sink.batches))
		}
		got := map[string]float64{}
		for _, r := range sink.batches[0] {
			got[r.Series] = r.Value
		}
		// The unreadable zone is skipped, the others keep their values.
		if len(got) != 3 || got["thermal/cpu-thermal"] != 48.312 || got["thermal/thermal_zone1"] != -1.5 || got["thermal/cpu-thermal-1"] != 50 {
			t.Fatalf("readings %v", got)
		}
	})
}

func TestThermalWithoutZonesSaysSo(t *testing.T) {
	_, err := NewThermal(ThermalConfig{Root: t.TempDir()}, "pi", nil)
	if !errors.Is(err, errNoZones) || !strings.Contains(err.Error(), "disable the thermal sensor") {
		t.Fatalf("err = %v", err)
	}
}
