package periph

import (
	"context"
	"errors"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"periph.io/x/conn/v3/gpio"
)

// Edges at known fake times: 25 pulses (and 3 contact bounces) in the
// first interval, none in the second, 5 in the partial interval before
// Run stops.
func TestPulseCountsAndRates(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		pin := newEdgePin()
		s, err := NewPulse(PulseConfig{Name: "water", Pin: "GPIO17", Pull: "up", Debounce: 5 * time.Millisecond,
			Interval: 10 * time.Second, Scale: 0.1, Unit: "L/s"}, "pi", nil,
			func(name string) (gpio.PinIO, error) { return pin, nil })
		if err != nil {
			t.Fatal(err)
		}
		out := &sink{}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- s.Run(ctx, out) }()

		start := time.Now()
		at := func(d time.Duration) { time.Sleep(time.Until(start.Add(d))) }
		edge := func() { pin.edges <- gpio.High }
		at(time.Second)
		for i := range 25 { // 1.0s … 3.4s
			edge()
			if i%10 == 0 {
				time.Sleep(time.Millisecond)
				edge() // a bounce 1ms later: ignored
			}
			time.Sleep(100 * time.Millisecond)
		}
		at(21 * time.Second)
		for range 5 { // 21s … 21.4s
			edge()
			time.Sleep(100 * time.Millisecond)
		}
		at(25*time.Second + 500*time.Millisecond)
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}

		got := out.all()
		scale, last := 0.1, 5/5.5 // the last 5 edges over 20s … 25.5s
		want := []map[string]float64{
			{"water/count": 25, "water/rate": 2.5, "water/scaled": 2.5 * scale},
			{"water/count": 0, "water/rate": 0, "water/scaled": 0},
			{"water/count": 5, "water/rate": last, "water/scaled": last * scale},
		}
		if len(got) != len(want) {
			t.Fatalf("got %d emissions %v, want %d", len(got), got, len(want))
		}
		for i := range want {
			if v := values(got[i]); !mapsEqual(v, want[i]) {
				t.Errorf("emission %d = %v, want %v", i, v, want[i])
			}
		}
		units := map[string]string{"water/count": "pulses", "water/rate": "Hz", "water/scaled": "L/s"}
		for _, b := range got {
			for _, r := range b {
				if r.Unit != units[r.Series] {
					t.Errorf("%s: unit %q", r.Series, r.Unit)
				}
			}
		}
		checkStamped(t, got, "pi")
		if d := time.Duration(got[1][0].Time - got[0][0].Time); d != 10*time.Second {
			t.Errorf("emissions %v apart, want 10s", d)
		}
		if st := s.Stats(); st.Edges != 30 || st.Bounces != 3 || st.Polls != 3 {
			t.Errorf("stats %+v", st)
		}
		pin.mu.Lock()
		defer pin.mu.Unlock()
		if pin.pull != gpio.PullUp || pin.edge != gpio.RisingEdge || !pin.halted {
			t.Errorf("pin pull %v edge %v halted %v", pin.pull, pin.edge, pin.halted)
		}
	})
}

func TestPulseSeries(t *testing.T) {
	s, err := NewPulse(PulseConfig{Pin: "GPIO5", Scale: 6, Unit: "L/min", Series: map[string]string{"scaled": "garden/flow"}}, "pi", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []SeriesInfo{{"pulse/count", "pulses", ""}, {"pulse/rate", "Hz", "frequency"}, {"garden/flow", "L/min", "volume_flow_rate"}}
	if got := s.Series(); !equalSeries(got, want) {
		t.Errorf("Series() = %v, want %v", got, want)
	}
}

func TestPulseStartErrors(t *testing.T) {
	t.Run("pin refuses edges", func(t *testing.T) {
		pin := newEdgePin()
		pin.inErr = errors.New("gpioioctl: device or resource busy")
		s, err := NewPulse(PulseConfig{Pin: "GPIO17"}, "pi", nil, func(string) (gpio.PinIO, error) { return pin, nil })
		if err != nil {
			t.Fatal(err)
		}
		err = s.Run(t.Context(), &sink{})
		if err == nil || !strings.Contains(err.Error(), "GPIO17") || !strings.Contains(err.Error(), "busy") {
			t.Fatalf("Run = %v", err)
		}
	})
	t.Run("sink fails", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			pin := newEdgePin()
			s, err := NewPulse(PulseConfig{Pin: "GPIO17", Interval: time.Second}, "pi", nil, func(string) (gpio.PinIO, error) { return pin, nil })
			if err != nil {
				t.Fatal(err)
			}
			err = s.Run(t.Context(), &sink{err: errors.New("wal: closed")})
			if err == nil || !strings.Contains(err.Error(), "wal: closed") {
				t.Fatalf("Run = %v", err)
			}
		})
	})
}

// On a machine without the hardware (like a CI runner; on a Pi the names
// below do not exist either), every driver's Run fails with ErrNoHardware
// and a message naming what is missing; nothing panics.
func TestNoHardware(t *testing.T) {
	bme, _ := NewBME280(BME280Config{Bus: "/dev/i2c-99"}, "pi", nil, nil)
	ads, _ := NewADS1x15(ADS1x15Config{Bus: "99", Channels: []ADCChannel{{Input: "0"}}}, "pi", nil, nil)
	ds, _ := NewDS18B20(DS18B20Config{Backend: "onewire", Bus: "w1-99"}, "pi", nil, nil)
	pulse, _ := NewPulse(PulseConfig{Pin: "GPIO999"}, "pi", nil, nil)
	for _, tc := range []struct {
		name string
		run  func() error
		want string
	}{
		{name: "bme280", run: func() error { return bme.Run(t.Context(), &sink{}) }, want: `"/dev/i2c-99"`},
		{name: "ads1x15", run: func() error { return ads.Run(t.Context(), &sink{}) }, want: `"99"`},
		{name: "ds18b20", run: func() error { return ds.Run(t.Context(), &sink{}) }, want: `"w1-99"`},
		{name: "pulse", run: func() error { return pulse.Run(t.Context(), &sink{}) }, want: `"GPIO999"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.run()
			if !errors.Is(err, ErrNoHardware) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Run = %v, want ErrNoHardware naming %s", err, tc.want)
			}
			t.Log(err)
		})
	}
}
