package periph

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"periph.io/x/conn/v3/onewire"
	"periph.io/x/conn/v3/physic"
	"periph.io/x/devices/v3/ds18b20"
)

// A thermometer ID is written as the Linux w1 subsystem names the device
// directory: family code, dash, 48-bit serial in hex ("28-0316a2795aff").

// thermometerFamilies are the 1-Wire family codes read like a DS18B20:
// DS18S20 (0x10), DS1822 (0x22) and DS18B20/MAX31820 (0x28).
var thermometerFamilies = map[uint64]bool{0x10: true, 0x22: true, 0x28: true}

// addressID formats a 1-Wire ROM address as a thermometer ID.
func addressID(a onewire.Address) string {
	return fmt.Sprintf("%02x-%012x", uint64(a)&0xff, uint64(a)>>8&0xffffffffffff)
}

// idAddress parses a thermometer ID (or a raw 64-bit ROM address written
// 0x…) into a ROM address, computing the CRC byte the ID leaves out.
func idAddress(id string) (onewire.Address, error) {
	if strings.HasPrefix(id, "0x") {
		a, err := strconv.ParseUint(id[2:], 16, 64)
		if err != nil || !onewire.CheckCRC(le64(a)) {
			return 0, fmt.Errorf("%q is not a 1-Wire ROM address with a valid CRC", id)
		}
		return onewire.Address(a), nil
	}
	fam, serial, ok := strings.Cut(id, "-")
	f, err1 := strconv.ParseUint(fam, 16, 8)
	s, err2 := strconv.ParseUint(serial, 16, 48)
	if !ok || len(fam) != 2 || len(serial) != 12 || err1 != nil || err2 != nil {
		return 0, fmt.Errorf("%q is not a 1-Wire sensor ID like 28-0316a2795aff", id)
	}
	a := s<<8 | f
	return onewire.Address(uint64(onewire.CalcCRC(le64(a)[:7]))<<56 | a), nil
}

// normalizeID writes a valid ID or ROM address as the kernel names it.
func normalizeID(id string) string {
	a, err := idAddress(strings.ToLower(id))
	if err != nil {
		return id
	}
	return addressID(a)
}

func le64(v uint64) []byte {
	b := make([]byte, 8)
	for i := range b {
		b[i] = byte(v >> (8 * i))
	}
	return b
}

// rejectError is a value a thermometer returned but that cannot be
// trusted: counted as rejected, not as a bus error.
type rejectError struct{ msg string }

func (e *rejectError) Error() string { return e.msg }

// powerOnMilli is the DS18B20's power-on register value, 85 °C: reading it
// means no conversion happened (usually too little power on a parasitic
// bus). A real 85 °C is rejected too; the periph driver makes the same
// trade.
const powerOnMilli = 85000

const powerOnMsg = "85 °C power-on value: no conversion happened (power or pull-up too weak)"

// w1Backend reads thermometers through one bus implementation.
type w1Backend interface {
	// discover lists the thermometers present, sorted.
	discover() ([]string, error)
	// read reads each thermometer (°C). errs[i] is set for one that gave no
	// valid value; err for a failure of the whole bus.
	read(ids []string) (temps []float64, errs []error, err error)
	close() error
}

// sysfsW1 reads the kernel's w1_therm driver under /sys/bus/w1/devices.
type sysfsW1 struct{ root string }

func (b *sysfsW1) discover() ([]string, error) {
	if _, err := os.Stat(b.root); err != nil {
		return nil, fmt.Errorf("%w: no 1-Wire bus (%v): %s", ErrNoHardware, err, oneWireHint)
	}
	var ids []string
	for _, fam := range []string{"10", "22", "28"} {
		m, _ := filepath.Glob(filepath.Join(b.root, fam+"-*"))
		for _, p := range m {
			ids = append(ids, filepath.Base(p))
		}
	}
	sort.Strings(ids)
	return ids, nil
}

func (b *sysfsW1) read(ids []string) ([]float64, []error, error) {
	temps, errs := make([]float64, len(ids)), make([]error, len(ids))
	for i, id := range ids {
		temps[i], errs[i] = readSysfsThermometer(filepath.Join(b.root, id))
	}
	return temps, errs, nil
}

func (b *sysfsW1) close() error { return nil }

// setResolution writes the resolution attribute (kernel ≥ 5.10, root).
func (b *sysfsW1) setResolution(id string, bits int) error {
	f, err := os.OpenFile(filepath.Join(b.root, id, "resolution"), os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(strconv.Itoa(bits))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// readSysfsThermometer reads one sensor directory: w1_slave when present,
// whose first line carries the CRC verdict, else temperature.
//
//	72 01 4b 46 7f ff 0e 10 57 : crc=57 YES
//	72 01 4b 46 7f ff 0e 10 57 t=23125
func readSysfsThermometer(dir string) (float64, error) {
	b, err := os.ReadFile(filepath.Join(dir, "w1_slave"))
	if errors.Is(err, os.ErrNotExist) {
		if b, err = os.ReadFile(filepath.Join(dir, "temperature")); err != nil {
			return 0, err
		}
		return milliCelsius(string(bytes.TrimSpace(b)))
	}
	if err != nil {
		return 0, err
	}
	return parseW1Slave(b)
}

func parseW1Slave(b []byte) (float64, error) {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 2 {
		return 0, fmt.Errorf("w1_slave: want 2 lines, got %q", b)
	}
	data, verdict, ok := strings.Cut(lines[0], ":")
	if !ok || !strings.Contains(verdict, "crc=") {
		return 0, fmt.Errorf("w1_slave: no CRC verdict in %q", lines[0])
	}
	if !strings.HasSuffix(strings.TrimSpace(verdict), "YES") {
		return 0, &rejectError{fmt.Sprintf("bad CRC (%s): check wiring, cable length and the 4.7 kΩ pull-up", strings.TrimSpace(lines[0]))}
	}
	if strings.Trim(data, "0 ") == "" {
		return 0, &rejectError{"all-zero scratchpad: the data line is stuck low"}
	}
	_, t, ok := strings.Cut(lines[1], "t=")
	if !ok {
		return 0, fmt.Errorf("w1_slave: no t= in %q", lines[1])
	}
	return milliCelsius(strings.TrimSpace(t))
}

func milliCelsius(s string) (float64, error) {
	m, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not millidegrees", s)
	}
	if m == powerOnMilli {
		return 0, &rejectError{powerOnMsg}
	}
	return plausible(float64(m) / 1000)
}

// plausible rejects values outside the DS18B20's range, -55 to +125 °C.
func plausible(c float64) (float64, error) {
	if c < -55 || c > 125 {
		return 0, &rejectError{fmt.Sprintf("%v °C is outside the sensor's range (-55 to 125 °C)", c)}
	}
	return c, nil
}

// busW1 reads thermometers over a periph.io 1-Wire bus: one Convert T
// for the whole bus (the conversion time of the highest resolution), then
// each scratchpad.
type busW1 struct {
	bus        onewire.BusCloser
	resolution int
	devs       map[string]*ds18b20.Dev
}

func (b *busW1) discover() ([]string, error) {
	addrs, err := b.bus.Search(false)
	if err != nil {
		return nil, fmt.Errorf("1-Wire search on %s: %w", b.bus, err)
	}
	var ids []string
	for _, a := range addrs {
		if thermometerFamilies[uint64(a)&0xff] {
			ids = append(ids, addressID(a))
		}
	}
	sort.Strings(ids)
	return ids, nil
}

// probe sets up the given thermometers (reading each scratchpad) and
// returns those that answered.
func (b *busW1) probe(ids []string) ([]string, error) {
	var found []string
	var errs []error
	for _, id := range ids {
		if err := b.setup(id); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", id, err))
			continue
		}
		found = append(found, id)
	}
	return found, errors.Join(errs...)
}

func (b *busW1) setup(id string) error {
	a, err := idAddress(id)
	if err != nil {
		return err
	}
	d, err := ds18b20.New(b.bus, a, b.resolution)
	if err != nil {
		return err
	}
	b.devs[id] = d
	return nil
}

func (b *busW1) read(ids []string) ([]float64, []error, error) {
	temps, errs := make([]float64, len(ids)), make([]error, len(ids))
	var live []int
	for i, id := range ids {
		if b.devs[id] == nil {
			if err := b.setup(id); err != nil {
				errs[i] = classifyDS18B20(err)
				continue
			}
		}
		live = append(live, i)
	}
	if len(live) == 0 {
		return temps, errs, nil
	}
	if err := ds18b20.ConvertAll(b.bus, b.resolution); err != nil {
		return nil, nil, fmt.Errorf("convert on %s: %w", b.bus, err)
	}
	for _, i := range live {
		t, err := b.devs[ids[i]].LastTemp()
		switch {
		case err != nil:
			errs[i] = classifyDS18B20(err)
		case t == powerOnMilli*physic.MilliCelsius+physic.ZeroCelsius:
			// ds18b20.LastTemp means to reject this but compares with
			// 85 K (periph.io/x/devices v3.7.4).
			errs[i] = &rejectError{powerOnMsg}
		default:
			temps[i], errs[i] = plausible(t.Celsius())
		}
	}
	return temps, errs, nil
}

func (b *busW1) close() error { return b.bus.Close() }

// classifyDS18B20 turns the periph driver's untrustworthy-value errors
// (bad scratchpad CRC, the 85 °C power-on value) into rejectErrors; a
// device that did not respond stays a bus error.
func classifyDS18B20(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	if strings.Contains(msg, "CRC") || strings.Contains(msg, "conversion") {
		return &rejectError{msg}
	}
	return err
}
