package periph

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"periph.io/x/conn/v3/onewire"
	"periph.io/x/conn/v3/onewire/onewiretest"
)

func TestThermometerIDs(t *testing.T) {
	// The address of periph's ds18b20 test sensor; the kernel names it 28-0000070e41ac.
	const addr onewire.Address = 0x740000070e41ac28
	if got := addressID(addr); got != "28-0000070e41ac" {
		t.Errorf("addressID = %q", got)
	}
	for _, id := range []string{"28-0000070e41ac", "28-0000070E41AC", "0x740000070e41ac28"} {
		if a, err := idAddress(strings.ToLower(id)); err != nil || a != addr {
			t.Errorf("idAddress(%q) = %#x, %v", id, a, err)
		}
	}
	s, err := NewDS18B20(DS18B20Config{IDs: []string{"0x740000070e41ac28"}, Series: map[string]string{"28-0000070E41AC": "tank/t"}}, "pi", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if si := s.Series(); len(si) != 1 || si[0].Series != "tank/t" {
		t.Errorf("IDs are not normalised: %v", si)
	}
	for _, id := range []string{"", "28", "28-12", "zz-0000070e41ac", "0x750000070e41ac28"} {
		if _, err := idAddress(id); err == nil {
			t.Errorf("idAddress(%q) succeeded", id)
		}
	}
}

func TestParseW1Slave(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     float64
		reject   string // substring of a rejectError, "" if valid
		bad      bool   // malformed: a plain error
	}{
		{"ok", "72 01 4b 46 7f ff 0e 10 57 : crc=57 YES\n72 01 4b 46 7f ff 0e 10 57 t=23125\n", 23.125, "", false},
		{"negative", "5e ff 4b 46 7f ff 02 10 e1 : crc=e1 YES\n5e ff 4b 46 7f ff 02 10 e1 t=-10125\n", -10.125, "", false},
		{"bad CRC", "72 01 4b 46 7f ff 0e 10 57 : crc=5a NO\n72 01 4b 46 7f ff 0e 10 57 t=23125\n", 0, "bad CRC", false},
		{"power-on 85 °C", "50 05 4b 46 7f ff 0c 10 1c : crc=1c YES\n50 05 4b 46 7f ff 0c 10 1c t=85000\n", 0, "85 °C", false},
		{"data line stuck low", "00 00 00 00 00 00 00 00 00 : crc=00 YES\n00 00 00 00 00 00 00 00 00 t=0\n", 0, "all-zero", false},
		{"truncated", "72 01 4b 46 7f ff 0e 10 57 : crc=57 YES\n", 0, "", true},
		{"no temperature", "72 01 4b 46 7f ff 0e 10 57 : crc=57 YES\n72 01 4b 46 7f ff 0e 10 57\n", 0, "", true},
		{"garbage", "72 01 : crc=57 YES\nt=abc\n", 0, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseW1Slave([]byte(tc.in))
			var rej *rejectError
			switch {
			case tc.reject != "":
				if !errors.As(err, &rej) || !strings.Contains(err.Error(), tc.reject) {
					t.Errorf("err = %v, want a rejection mentioning %q", err, tc.reject)
				}
			case tc.bad:
				if err == nil || errors.As(err, &rej) {
					t.Errorf("err = %v, want a parse error", err)
				}
			case err != nil || got != tc.want:
				t.Errorf("= %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func w1Slave(crcOK bool, milli string) string {
	v := "YES"
	if !crcOK {
		v = "NO"
	}
	return "72 01 4b 46 7f ff 0e 10 57 : crc=57 " + v + "\n72 01 4b 46 7f ff 0e 10 57 t=" + milli + "\n"
}

// Two sensors through the kernel's files (one with w1_slave, one with the
// newer temperature attribute), a bad CRC, the 85 °C power-on value, a
// sensor unplugged: rejected values never reach the sink, and a poll with
// nothing valid is retried with backoff.
func TestDS18B20Sysfs(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		root := t.TempDir()
		a, b := filepath.Join(root, "28-0000070e41ac"), filepath.Join(root, "28-0316a2795aff")
		writeFile(t, filepath.Join(root, "w1_bus_master1", "w1_master_slaves"), "28-0000070e41ac\n28-0316a2795aff\n")
		writeFile(t, filepath.Join(a, "w1_slave"), w1Slave(true, "23125"))
		writeFile(t, filepath.Join(b, "temperature"), "-1500\n")
		log, logs := newLog()
		s, err := NewDS18B20(DS18B20Config{SysfsRoot: root, IDs: []string{"all"},
			Series: map[string]string{"28-0316A2795AFF": "tank/temperature"}}, "pi", log, nil)
		if err != nil {
			t.Fatal(err)
		}
		out := &sink{}
		done := make(chan error, 1)
		ctx, cancel := context.WithCancel(t.Context())
		go func() { done <- s.Run(ctx, out) }()

		time.Sleep(15 * time.Second) // poll at 0s: both
		writeFile(t, filepath.Join(a, "w1_slave"), w1Slave(false, "23125"))
		time.Sleep(30 * time.Second) // poll at 30s: only b
		writeFile(t, filepath.Join(a, "w1_slave"), w1Slave(true, "85000"))
		writeFile(t, filepath.Join(b, "temperature"), "85000\n")
		time.Sleep(15*time.Second + 500*time.Millisecond) // poll at 60s: nothing valid, retry in 1s
		writeFile(t, filepath.Join(a, "w1_slave"), w1Slave(true, "21500"))
		if err := os.RemoveAll(b); err != nil {
			t.Fatal(err)
		}
		time.Sleep(9 * time.Second) // poll at 61s: a again
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}

		got := out.all()
		want := []map[string]float64{
			{"ds18b20/28-0000070e41ac": 23.125, "tank/temperature": -1.5},
			{"tank/temperature": -1.5},
			{"ds18b20/28-0000070e41ac": 21.5},
		}
		if len(got) != len(want) {
			t.Fatalf("got %d polls %v, want %d", len(got), got, len(want))
		}
		for i := range want {
			if v := values(got[i]); !mapsEqual(v, want[i]) {
				t.Errorf("poll %d = %v, want %v", i, v, want[i])
			}
		}
		if d := time.Duration(got[2][0].Time - got[0][0].Time); d != 61*time.Second {
			t.Errorf("last poll at %v, want 61s", d)
		}
		checkStamped(t, got, "pi")
		if st := s.Stats(); st.Polls != 3 || st.Rejected != 3 || st.Errors != 1 {
			t.Errorf("stats %+v", st)
		}
		if si := s.Series(); len(si) != 1 || si[0] != (SeriesInfo{"ds18b20/28-0000070e41ac", "°C", "temperature"}) {
			t.Errorf("Series() = %v", si)
		}
		l := logs.String()
		for _, w := range []string{"bad CRC", "85 °C power-on value", "no sensor gave a valid reading", "retry_in=1s",
			"sensor reading again", "sensors changed", "id=28-0000070e41ac", "backend=sysfs"} {
			if !strings.Contains(l, w) {
				t.Errorf("log lacks %q:\n%s", w, l)
			}
		}
		// One warning per sensor per change of state, not per poll.
		if n := strings.Count(l, "reading rejected, skipping"); n != 2 {
			t.Errorf("%d rejection warnings, want 2 (a at 30s, b at 60s):\n%s", n, l)
		}
	})
}

func TestDS18B20SysfsStart(t *testing.T) {
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "28-0000070e41ac", "w1_slave"), w1Slave(true, "23125"))
	writeFile(t, filepath.Join(root, "28-0000070e41ac", "resolution"), "12\n")
	for _, tc := range []struct {
		name string
		cfg  DS18B20Config
		want []string
	}{
		{"1-Wire not enabled", DS18B20Config{SysfsRoot: filepath.Join(root, "nope")}, []string{"nope", "raspi-config", "dtoverlay=w1-gpio"}},
		{"no sensor", DS18B20Config{SysfsRoot: filepath.Join(root, "28-0000070e41ac")}, []string{"no DS18B20 found", "pull-up"}},
		{"sensor missing", DS18B20Config{SysfsRoot: root, IDs: []string{"28-0000070e41ac", "28-0316a2795aff"}},
			[]string{"sensor 28-0316a2795aff not found", "found: 28-0000070e41ac"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := NewDS18B20(tc.cfg, "pi", nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			err = s.Run(t.Context(), &sink{})
			if !errors.Is(err, ErrNoHardware) {
				t.Fatalf("Run = %v, want ErrNoHardware", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q: %v", w, err)
				}
			}
		})
	}
	t.Run("resolution", func(t *testing.T) {
		s, err := NewDS18B20(DS18B20Config{SysfsRoot: root, IDs: []string{"28-0000070e41ac"}, Resolution: 10}, "pi", nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if err := s.Run(ctx, &sink{}); err != nil {
			t.Fatal(err)
		}
		if b, _ := os.ReadFile(filepath.Join(root, "28-0000070e41ac", "resolution")); string(b) != "10" {
			t.Errorf("resolution file = %q, want 10", b)
		}
	})
}

// Transactions of periph's own ds18b20 test: a sensor at 10-bit
// resolution reading 30 °C. Match ROM + read scratchpad, Skip ROM +
// Convert T (strong pull-up), Match ROM + read scratchpad.
func TestDS18B20OneWireReplay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		read := onewiretest.IO{W: []byte{0x55, 0x28, 0xac, 0x41, 0xe, 0x7, 0x0, 0x0, 0x74, 0xbe},
			R: []byte{0xe0, 0x1, 0x0, 0x0, 0x3f, 0xff, 0x10, 0x10, 0x3f}}
		pb := &onewiretest.Playback{Ops: []onewiretest.IO{read, {W: []byte{0xcc, 0x44}, Pull: onewire.StrongPullup}, read}, DontPanic: true}
		s, err := NewDS18B20(DS18B20Config{Backend: "onewire", Bus: "w1", IDs: []string{"28-0000070e41ac"}, Resolution: 10}, "pi", nil,
			func(string) (onewire.BusCloser, error) { return nopBus{pb}, nil })
		if err != nil {
			t.Fatal(err)
		}
		out := &sink{}
		if err := runFor(t, 10*time.Second, func(ctx context.Context) error { return s.Run(ctx, out) }); err != nil {
			t.Fatal(err)
		}
		if err := pb.Close(); err != nil {
			t.Fatal(err)
		}
		got := out.all()
		if len(got) != 1 || !mapsEqual(values(got[0]), map[string]float64{"ds18b20/28-0000070e41ac": 30}) {
			t.Fatalf("got %v", got)
		}
	})
}

// spad is a DS18B20 scratchpad at 12-bit resolution holding raw (1/16 °C),
// with its CRC (or a wrong one).
func spad(raw int16, crcOK bool) []byte {
	b := []byte{byte(raw), byte(raw >> 8), 0x4b, 0x46, 0x7f, 0xff, 0x0c, 0x10, 0}
	b[8] = onewire.CalcCRC(b[:8])
	if !crcOK {
		b[8] ^= 0x5a
	}
	return b
}

// "all" on a periph 1-Wire bus: a search finds both sensors, one Convert T
// serves both, then a bad CRC and the power-on value make a poll with
// nothing valid, retried a second later.
func TestDS18B20OneWireAll(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, _ := idAddress("28-0000070e41ac")
		b, _ := idAddress("28-0316a2795aff")
		readA := func(r []byte) onewiretest.IO {
			return onewiretest.IO{W: append(append([]byte{0x55}, le64(uint64(a))...), 0xbe), R: r}
		}
		readB := func(r []byte) onewiretest.IO {
			return onewiretest.IO{W: append(append([]byte{0x55}, le64(uint64(b))...), 0xbe), R: r}
		}
		search := []onewiretest.IO{{W: []byte{0xf0}}, {W: []byte{0xf0}}}
		convert := onewiretest.IO{W: []byte{0xcc, 0x44}, Pull: onewire.StrongPullup}
		good := func() []onewiretest.IO {
			return []onewiretest.IO{convert, readA(spad(0x0172, true)), readB(spad(-162, true))} // 23.125 °C, -10.125 °C
		}
		pb := &onewiretest.Playback{Devices: []onewire.Address{a, b}, DontPanic: true, Ops: slicesConcat(
			search,                                                                                 // at start
			search, []onewiretest.IO{readA(spad(0x0172, true)), readB(spad(0x0172, true))}, good(), // poll at 0s: set up both, read
			search, []onewiretest.IO{convert, readA(spad(0x0172, false)), readB(spad(0x0550, true))}, // poll at 30s: bad CRC, 85 °C
			search, good(), // retry at 31.752s
		)}
		log, logs := newLog()
		s, err := NewDS18B20(DS18B20Config{Backend: "onewire"}, "pi", log, func(string) (onewire.BusCloser, error) { return nopBus{pb}, nil })
		if err != nil {
			t.Fatal(err)
		}
		out := &sink{}
		if err := runFor(t, 40*time.Second, func(ctx context.Context) error { return s.Run(ctx, out) }); err != nil {
			t.Fatal(err)
		}
		if err := pb.Close(); err != nil {
			t.Fatal(err)
		}
		got := out.all()
		want := map[string]float64{"ds18b20/28-0000070e41ac": 23.125, "ds18b20/28-0316a2795aff": -10.125}
		if len(got) != 2 || !mapsEqual(values(got[0]), want) || !mapsEqual(values(got[1]), want) {
			t.Fatalf("got %v", got)
		}
		if st := s.Stats(); st.Rejected != 2 || st.Errors != 1 || st.Polls != 2 {
			t.Errorf("stats %+v", st)
		}
		for _, w := range []string{"incorrect scratchpad CRC", "85 °C power-on value", "id=28-0316a2795aff", "retry_in=1s", "backend=onewire"} {
			if !strings.Contains(logs.String(), w) {
				t.Errorf("log lacks %q:\n%s", w, logs)
			}
		}
	})
}

// nopBus keeps Run from closing the playback, which the test checks itself.
type nopBus struct{ *onewiretest.Playback }

func (nopBus) Close() error { return nil }

func slicesConcat(parts ...[]onewiretest.IO) []onewiretest.IO {
	var out []onewiretest.IO
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}
