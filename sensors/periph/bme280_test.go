package periph

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"periph.io/x/conn/v3/i2c/i2ctest"
)

// Transactions recorded from a BME280 and a BMP280 at 0x76 (those of
// periph.io/x/devices/v3/bmxx80's tests), with the default 4x
// oversampling of every quantity.
var (
	bmeChipID = i2ctest.IO{Addr: 0x76, W: []byte{0xd0}, R: []byte{0x60}}
	bmpChipID = i2ctest.IO{Addr: 0x76, W: []byte{0xd0}, R: []byte{0x58}}
	bmeCalib  = i2ctest.IO{Addr: 0x76, W: []byte{0x88}, R: []byte{0x10, 0x6e, 0x6c, 0x66, 0x32, 0x0, 0x5d, 0x95, 0xb8,
		0xd5, 0xd0, 0xb, 0x77, 0x1e, 0x9d, 0xff, 0xf9, 0xff, 0xac, 0x26, 0xa, 0xd8, 0xbd, 0x10, 0x0, 0x4b}}
	bmeCalibHum = i2ctest.IO{Addr: 0x76, W: []byte{0xe1}, R: []byte{0x6e, 0x1, 0x0, 0x13, 0x5, 0x0, 0x1e}}
	// ctrl_meas (sleep), ctrl_hum 4x, config (standby 1s, no filter), ctrl_meas.
	bmeConfig = i2ctest.IO{Addr: 0x76, W: []byte{0xf4, 0x6c, 0xf2, 0x3, 0xf5, 0xa0, 0xf4, 0x6c}}
	bmpConfig = i2ctest.IO{Addr: 0x76, W: []byte{0xf4, 0x6c, 0xf5, 0xa0, 0xf4, 0x6c}}

	bmeInit = []i2ctest.IO{bmeChipID, bmeCalib, bmeCalibHum, bmeConfig}
	bmpInit = []i2ctest.IO{bmpChipID, bmeCalib, bmpConfig}

	// A forced-mode measurement: start, status busy, status idle, read.
	bmeSense = []i2ctest.IO{
		{Addr: 0x76, W: []byte{0xf4, 0x6d}},
		{Addr: 0x76, W: []byte{0xf3}, R: []byte{8}},
		{Addr: 0x76, W: []byte{0xf3}, R: []byte{0}},
		{Addr: 0x76, W: []byte{0xf7}, R: []byte{0x4a, 0x52, 0xc0, 0x80, 0x96, 0xc0, 0x7a, 0x76}},
	}
	bmpSense = []i2ctest.IO{
		bmeSense[0], bmeSense[1], bmeSense[2],
		{Addr: 0x76, W: []byte{0xf7}, R: []byte{0x4a, 0x52, 0xc0, 0x80, 0x96, 0xc0}},
	}
)

// The values those transactions decode to (as the bmxx80 tests assert:
// 23720 m°C, 100942695312500 nPa, 6530560 tenths of µRH).
const (
	wantTemp     = 23.72
	wantPressure = 1009.426953125
	wantHumidity = 65.3056
)

func ops(parts ...[]i2ctest.IO) []i2ctest.IO { return slices.Concat(parts...) }

func TestBME280Replay(t *testing.T) {
	for _, tc := range []struct {
		name  string
		model string
		ops   []i2ctest.IO
		want  map[string]float64
	}{
		{"BME280", "bme280", ops(bmeInit, bmeSense, bmeSense, bmeSense),
			map[string]float64{"gh/temperature": wantTemp, "gh/pressure": wantPressure, "gh/humidity": wantHumidity}},
		{"BMP280", "", ops(bmpInit, bmpSense, bmpSense, bmpSense),
			map[string]float64{"gh/temperature": wantTemp, "gh/pressure": wantPressure}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				pb := &i2ctest.Playback{Ops: tc.ops, DontPanic: true}
				bus := &faultBus{Bus: pb}
				s, err := NewBME280(BME280Config{Name: "gh", Model: tc.model, Bus: "1", Interval: 10 * time.Second}, "pi", nil, bus.opener())
				if err != nil {
					t.Fatal(err)
				}
				out := &sink{}
				if err := runFor(t, 25*time.Second, func(ctx context.Context) error { return s.Run(ctx, out) }); err != nil {
					t.Fatal(err)
				}
				if err := pb.Close(); err != nil {
					t.Fatal(err)
				}
				if !bus.closed {
					t.Error("Run did not close the bus")
				}
				got := out.all()
				if len(got) != 3 {
					t.Fatalf("got %d polls, want 3 (at 0s, 10s, 20s)", len(got))
				}
				for _, b := range got {
					if v := values(b); !mapsEqual(v, tc.want) {
						t.Errorf("poll = %v, want %v", v, tc.want)
					}
					for _, r := range b {
						if want := map[string]string{"gh/temperature": "°C", "gh/pressure": "hPa", "gh/humidity": "%"}[r.Series]; r.Unit != want {
							t.Errorf("%s: unit %q, want %q", r.Series, r.Unit, want)
						}
					}
				}
				if d := time.Duration(got[1][0].Time - got[0][0].Time); d != 10*time.Second {
					t.Errorf("polls %v apart, want 10s", d)
				}
				checkStamped(t, got, "pi")
				if len(s.Series()) != len(tc.want) {
					t.Errorf("Series() = %v, want %d series", s.Series(), len(tc.want))
				}
				if st := s.Stats(); st.Polls != 3 || st.Readings != uint64(3*len(tc.want)) || st.Errors != 0 {
					t.Errorf("stats %+v", st)
				}
			})
		})
	}
}

// A NACK in the middle of a measurement and a timeout while setting the
// chip up again: two warnings, retries after 1s then 2s, and readings
// again once the chip answers.
func TestBME280RecoversFromBusErrors(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		pb := &i2ctest.Playback{Ops: ops(bmeInit, bmeSense, bmeInit, bmeSense), DontPanic: true}
		// Tx 0-3 set up, 4-7 measure; 8 (start of the 2nd measurement)
		// NACKs, 9 (chip id of the new setup) times out.
		bus := &faultBus{Bus: pb, faults: map[int]error{8: errNACK, 9: errTimeout}}
		log, logs := newLog()
		s, err := NewBME280(BME280Config{Name: "gh", Bus: "1", Interval: 10 * time.Second}, "pi", log, bus.opener())
		if err != nil {
			t.Fatal(err)
		}
		out := &sink{}
		if err := runFor(t, 20*time.Second, func(ctx context.Context) error { return s.Run(ctx, out) }); err != nil {
			t.Fatal(err)
		}
		if err := pb.Close(); err != nil {
			t.Fatal(err)
		}
		got := out.all()
		if len(got) != 2 {
			t.Fatalf("got %d polls, want 2", len(got))
		}
		want := map[string]float64{"gh/temperature": wantTemp, "gh/pressure": wantPressure, "gh/humidity": wantHumidity}
		if v := values(got[1]); !mapsEqual(v, want) {
			t.Errorf("after recovery = %v, want %v", v, want)
		}
		// Poll at 10s fails, retry at 11s fails, retry at 13s succeeds.
		if d := time.Duration(got[1][0].Time - got[0][0].Time); d != 13*time.Second {
			t.Errorf("recovered reading %v after the first, want 13s", d)
		}
		st := s.Stats()
		if st.Polls != 2 || st.Errors != 2 || st.Reinits != 1 || !strings.Contains(st.LastError, "timed out") {
			t.Errorf("stats %+v", st)
		}
		l := logs.String()
		for _, w := range []string{"level=WARN", "remote I/O error", "connection timed out", "retry_in=1s", "retry_in=2s",
			"addr=0x76", "bus=1", "sensor=gh", "reading again"} {
			if !strings.Contains(l, w) {
				t.Errorf("log lacks %q:\n%s", w, l)
			}
		}
	})
}

// With a filter the chip runs in normal mode: configured once with the
// filter and standby, then only read.
func TestBME280Filter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		read := bmeSense[3]
		pb := &i2ctest.Playback{Ops: []i2ctest.IO{bmeChipID, bmeCalib, bmeCalibHum,
			// config: standby 1s (the longest under the interval), filter 16; ctrl_meas: normal mode.
			{Addr: 0x76, W: []byte{0xf4, 0x6c, 0xf2, 0x3, 0xf5, 0xb0, 0xf4, 0x6f}},
			read, read}, DontPanic: true}
		bus := &faultBus{Bus: pb}
		s, err := NewBME280(BME280Config{Filter: "16", Interval: 10 * time.Second}, "pi", nil, bus.opener())
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
		if got := out.all(); len(got) != 2 || values(got[1])["bme280/temperature"] != wantTemp {
			t.Errorf("got %v", got)
		}
	})
}

func TestBME280StartErrors(t *testing.T) {
	for _, tc := range []struct {
		name   string
		cfg    BME280Config
		ops    []i2ctest.IO
		faults map[int]error
		noHW   bool
		want   []string
	}{
		{"nothing at the address", BME280Config{Bus: "1"}, nil, map[int]error{0: errNACK}, true,
			[]string{`bme280 "bme280"`, "0x76", `bus "1"`, "remote I/O error", "i2cdetect -y 1", "SDO"}},
		{"wrong chip", BME280Config{Address: 0x77}, []i2ctest.IO{{Addr: 0x77, W: []byte{0xd0}, R: []byte{0x42}}}, nil, true,
			[]string{"0x77", "unexpected chip id"}},
		{"BMP280 sold as BME280", BME280Config{Model: "BME280"}, bmpInit, nil, false,
			[]string{"found a BMP280", "model bme280"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pb := &i2ctest.Playback{Ops: tc.ops, DontPanic: true}
			bus := &faultBus{Bus: pb, faults: tc.faults}
			s, err := NewBME280(tc.cfg, "pi", nil, bus.opener())
			if err != nil {
				t.Fatal(err)
			}
			err = s.Run(t.Context(), &sink{})
			if err == nil {
				t.Fatal("Run succeeded")
			}
			if errors.Is(err, ErrNoHardware) != tc.noHW {
				t.Errorf("errors.Is(err, ErrNoHardware) = %v", !tc.noHW)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q: %v", w, err)
				}
			}
		})
	}
}

func mapsEqual(a, b map[string]float64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}
