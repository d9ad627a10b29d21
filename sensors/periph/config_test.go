package periph

import (
	"bytes"
	"math"
	"os"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

func decodeStrict[T any](t *testing.T, file string) []T {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	var out []T
	if err := dec.Decode(&out); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	if len(out) == 0 {
		t.Fatalf("%s: no entries", file)
	}
	return out
}

func seriesNames(si []SeriesInfo) string {
	var s []string
	for _, x := range si {
		s = append(s, x.Series+"["+x.Unit+","+x.DeviceClass+"]")
	}
	return strings.Join(s, " ")
}

// Every example config parses with no unknown key, validates, and builds a
// driver whose series are the documented ones.
func TestExampleConfigs(t *testing.T) {
	t.Run("bme280", func(t *testing.T) {
		cfgs := decodeStrict[BME280Config](t, "testdata/config-bme280.yaml")
		want := []string{
			"greenhouse/temperature[°C,temperature] greenhouse/pressure[hPa,atmospheric_pressure] greenhouse/humidity[%,humidity]",
			"shed/air_temperature[°C,temperature] shed/pressure[hPa,atmospheric_pressure]",
		}
		for i, c := range cfgs {
			s, err := NewBME280(c, "pi", nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			if got := seriesNames(s.Series()); got != want[i] {
				t.Errorf("[%d] series %s, want %s", i, got, want[i])
			}
		}
		if o := cfgs[0].opts(); o.Filter == 0 || o.Standby != 10*time.Second {
			t.Errorf("filter not applied: %+v", o)
		}
	})
	t.Run("ds18b20", func(t *testing.T) {
		cfgs := decodeStrict[DS18B20Config](t, "testdata/config-ds18b20.yaml")
		want := []string{"", "pipes/28-0000070e41ac[°C,temperature] pipes/28-0316a2795aff[°C,temperature]"}
		for i, c := range cfgs {
			s, err := NewDS18B20(c, "pi", nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			if got := seriesNames(s.Series()); got != want[i] {
				t.Errorf("[%d] series %s, want %s", i, got, want[i])
			}
		}
	})
	t.Run("ads1x15", func(t *testing.T) {
		cfgs := decodeStrict[ADS1x15Config](t, "testdata/config-ads1x15.yaml")
		s, err := NewADS1x15(cfgs[0], "pi", nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		want := "adc/ch0[V,voltage] garden/soil_moisture[%,moisture] shunt/current[A,current]"
		if got := seriesNames(s.Series()); got != want {
			t.Errorf("series %s, want %s", got, want)
		}
		// Dry (2.2 V) and wet (1.1 V) ends of the moisture probe's scaling.
		ch := s.cfg.Channels[1]
		if dry, wet := 2.2*ch.Scale+ch.Offset, 1.1*ch.Scale+ch.Offset; math.Abs(dry) > 0.1 || math.Abs(wet-50) > 0.1 {
			t.Errorf("moisture scaling gives %v … %v", dry, wet)
		}
	})
	t.Run("pulse", func(t *testing.T) {
		cfgs := decodeStrict[PulseConfig](t, "testdata/config-pulse.yaml")
		s, err := NewPulse(cfgs[0], "pi", nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		want := "water/count[pulses,] water/rate[Hz,frequency] garden/water_flow[L/min,volume_flow_rate]"
		if got := seriesNames(s.Series()); got != want {
			t.Errorf("series %s, want %s", got, want)
		}
	})
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want []string // substrings of the error; none: valid
	}{
		{"bme280 zero", (&BME280Config{}).Validate(), nil},
		{"bme280 bad", (&BME280Config{Model: "bme680", Address: 0x48, Interval: time.Millisecond, Filter: "3",
			Oversampling: BME280Oversampling{Temperature: "none", Pressure: "3x"}, Series: map[string]string{"co2": "x", "humidity": "a b"}}).Validate(),
			[]string{`model "bme680"`, "address 0x48", "interval 1ms", "temperature cannot be none", `pressure "3x"`, `filter "3"`,
				"series.co2: unknown quantity", `series.humidity "a b" contains blanks`}},
		{"ds18b20 zero", (&DS18B20Config{}).Validate(), nil},
		{"ds18b20 bad", (&DS18B20Config{Backend: "gpio", Bus: "1", Resolution: 8, Interval: 500 * time.Millisecond,
			IDs: []string{"all", "28-xyz"}, Series: map[string]string{"28-0000070e41ac": "a/#"}}).Validate(),
			[]string{`backend "gpio"`, "only used with backend: onewire", "resolution 8", "interval 500ms", `"all" cannot be combined`,
				`ids[1]: "28-xyz" is not a 1-Wire sensor ID`, "MQTT wildcard"}},
		{"ads1x15 no channels", (&ADS1x15Config{}).Validate(), []string{"channels: none configured"}},
		{"ads1x15 bad", (&ADS1x15Config{Chip: "ads1015", Address: 0x50, DataRate: 860, Channels: []ADCChannel{
			{Input: "4"}, {Input: "0", Gain: "3"}, {Input: "1", Gain: "1", Range: 4.096}, {Input: "2", Range: 3.3},
			{Input: "3", Series: "adc/x"}, {Input: "0-1", Series: "adc/x"}}}).Validate(),
			[]string{`input "4"`, `gain "3"`, "gain or range, not both", "range 3.3", "address 0x50", "data_rate 860",
				"[128 250 490 920 1600 2400 3300]", `channels[5].series "adc/x" is also channels[4]'s`}},
		{"pulse no pin", (&PulseConfig{}).Validate(), []string{"pin is required"}},
		{"pulse bad", (&PulseConfig{Pin: "GPIO4", Edge: "up", Pull: "strong", Debounce: 2 * time.Second, Interval: time.Second,
			Unit: "L/s", Series: map[string]string{"total": "x"}}).Validate(),
			[]string{`edge "up"`, `pull "strong"`, "debounce 2s is not below the interval 1s", "set scale too", "series.total"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if len(tc.want) == 0 {
				if tc.err != nil {
					t.Fatalf("unexpected error: %v", tc.err)
				}
				return
			}
			if tc.err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(tc.err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, tc.err)
				}
			}
		})
	}
}

// FuzzParseW1Slave: whatever the kernel file holds, parsing never panics
// and an accepted value is a plausible temperature.
func FuzzParseW1Slave(f *testing.F) {
	f.Add([]byte(w1Slave(true, "23125")))
	f.Add([]byte(w1Slave(false, "23125")))
	f.Add([]byte("00 00 00 00 00 00 00 00 00 : crc=00 YES\n00 00 00 00 00 00 00 00 00 t=0\n"))
	f.Add([]byte(":crc=YES\nt=-99999999999999999999"))
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := parseW1Slave(b)
		if err == nil && (math.IsNaN(v) || v < -55 || v > 125) {
			t.Fatalf("accepted %v from %q", v, b)
		}
	})
}
