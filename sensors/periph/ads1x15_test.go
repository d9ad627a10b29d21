package periph

import (
	"context"
	"errors"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"periph.io/x/conn/v3/i2c/i2ctest"
)

// The config register after power-up: reading it is the driver's probe.
var adsProbe = i2ctest.IO{Addr: 0x48, W: []byte{0x01}, R: []byte{0x85, 0x83}}

// adsRead is one single-shot conversion: write the config register (start
// bit, mux, gain, single-shot, data rate, comparator off), then read the
// conversion register.
func adsRead(config0, config1 byte, result ...byte) []i2ctest.IO {
	return []i2ctest.IO{
		{Addr: 0x48, W: []byte{0x01, config0, config1}},
		{Addr: 0x48, W: []byte{0x00}, R: result},
	}
}

func TestADS1x15Replay(t *testing.T) {
	v := 0.4095625 // 6553 × 2.048 V / 32768
	for _, tc := range []struct {
		name   string
		cfg    ADS1x15Config
		ops    []i2ctest.IO
		want   map[string]float64
		series []SeriesInfo
	}{
		{
			name: "ADS1115 single-ended, scaled",
			cfg: ADS1x15Config{Channels: []ADCChannel{
				{Input: "0"},
				{Input: "1", Gain: "2", Scale: 100, Offset: -10, Unit: "%", Series: "tank/level", DeviceClass: "moisture"},
			}},
			// ch0: 0xc383 = start | AIN0 | ±4.096 V | single | 128 SPS | no comparator; 0x4000 → 2.048 V.
			// ch1: 0xd583 = start | AIN1 | ±2.048 V | …; 0x1999 = 6553 → 0.4095625 V.
			ops:    ops([]i2ctest.IO{adsProbe}, adsRead(0xc3, 0x83, 0x40, 0x00), adsRead(0xd5, 0x83, 0x19, 0x99)),
			want:   map[string]float64{"adc/ch0": 2.048, "tank/level": v*100 + -10},
			series: []SeriesInfo{{"adc/ch0", "V", "voltage"}, {"tank/level", "%", "moisture"}},
		},
		{
			// The transaction of periph's own ads1x15 test: AIN0−AIN3 at ±6.144 V, 128 SPS.
			name:   "ADS1015 differential",
			cfg:    ADS1x15Config{Chip: "ads1015", DataRate: 128, Name: "bat", Channels: []ADCChannel{{Input: "0-3", Range: 6.144}}},
			ops:    ops([]i2ctest.IO{adsProbe}, adsRead(0x91, 0x03, 0xff, 0x50)),
			want:   map[string]float64{"bat/ch0-3": -0.033},
			series: []SeriesInfo{{"bat/ch0-3", "V", "voltage"}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				pb := &i2ctest.Playback{Ops: tc.ops, DontPanic: true}
				bus := &faultBus{Bus: pb}
				s, err := NewADS1x15(tc.cfg, "pi", nil, bus.opener())
				if err != nil {
					t.Fatal(err)
				}
				out := &sink{}
				if err := runFor(t, 5*time.Second, func(ctx context.Context) error { return s.Run(ctx, out) }); err != nil {
					t.Fatal(err)
				}
				if err := pb.Close(); err != nil {
					t.Fatal(err)
				}
				got := out.all()
				if len(got) != 1 {
					t.Fatalf("got %d polls, want 1", len(got))
				}
				if v := values(got[0]); !mapsEqual(v, tc.want) {
					t.Errorf("poll = %v, want %v", v, tc.want)
				}
				checkStamped(t, got, "pi")
				if s := s.Series(); !equalSeries(s, tc.series) {
					t.Errorf("Series() = %v, want %v", s, tc.series)
				}
			})
		})
	}
}

// A NACK on a conversion: a warning, a retry a second later, readings again.
func TestADS1x15RecoversFromNACK(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		read := adsRead(0xc3, 0x83, 0x40, 0x00)
		pb := &i2ctest.Playback{Ops: ops([]i2ctest.IO{adsProbe}, read, read), DontPanic: true}
		bus := &faultBus{Bus: pb, faults: map[int]error{3: errNACK}} // the 2nd poll's config write
		log, logs := newLog()
		s, err := NewADS1x15(ADS1x15Config{Bus: "/dev/i2c-1", Channels: []ADCChannel{{Input: "0"}}}, "pi", log, bus.opener())
		if err != nil {
			t.Fatal(err)
		}
		out := &sink{}
		if err := runFor(t, 15*time.Second, func(ctx context.Context) error { return s.Run(ctx, out) }); err != nil {
			t.Fatal(err)
		}
		if err := pb.Close(); err != nil {
			t.Fatal(err)
		}
		got := out.all()
		if len(got) != 2 || values(got[1])["adc/ch0"] != 2.048 {
			t.Fatalf("got %v", got)
		}
		if d := time.Duration(got[1][0].Time - got[0][0].Time); d != 11*time.Second {
			t.Errorf("recovered reading %v after the first, want 11s", d)
		}
		if st := s.Stats(); st.Polls != 2 || st.Errors != 1 {
			t.Errorf("stats %+v", st)
		}
		for _, w := range []string{"level=WARN", "channel 0", "remote I/O error", "addr=0x48", "bus=/dev/i2c-1", "retry_in=1s"} {
			if !strings.Contains(logs.String(), w) {
				t.Errorf("log lacks %q:\n%s", w, logs)
			}
		}
	})
}

func TestADS1x15NotAnswering(t *testing.T) {
	bus := &faultBus{Bus: &i2ctest.Playback{DontPanic: true}, faults: map[int]error{0: errNACK}}
	s, err := NewADS1x15(ADS1x15Config{Bus: "1", Address: 0x49, Channels: []ADCChannel{{Input: "0"}}}, "pi", nil, bus.opener())
	if err != nil {
		t.Fatal(err)
	}
	err = s.Run(t.Context(), &sink{})
	if !errors.Is(err, ErrNoHardware) {
		t.Fatalf("Run = %v, want ErrNoHardware", err)
	}
	for _, w := range []string{`ads1115 "adc"`, "0x49", `bus "1"`, "i2cdetect -y 1"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error lacks %q: %v", w, err)
		}
	}
}

func equalSeries(a, b []SeriesInfo) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
