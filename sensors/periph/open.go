package periph

import (
	"fmt"
	"strconv"
	"strings"
	"sync"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpioreg"
	"periph.io/x/conn/v3/i2c"
	"periph.io/x/conn/v3/i2c/i2creg"
	"periph.io/x/conn/v3/onewire"
	"periph.io/x/conn/v3/onewire/onewirereg"
	"periph.io/x/host/v3"
)

// I2COpener opens an I²C bus by name. OpenI2C, the default, opens the
// host's buses; tests pass one that returns an i2ctest.Playback.
type I2COpener func(name string) (i2c.BusCloser, error)

// OneWireOpener opens a 1-Wire bus by name (OpenOneWire by default).
type OneWireOpener func(name string) (onewire.BusCloser, error)

// PinOpener looks a GPIO pin up by name (OpenPin by default).
type PinOpener func(name string) (gpio.PinIO, error)

// hostInit loads periph.io's host drivers once per process. It fails only
// when a driver that applies to this host breaks; a machine without
// I²C or GPIO simply registers none.
var hostInit = sync.OnceValue(func() error {
	if _, err := host.Init(); err != nil {
		return fmt.Errorf("periph.io host drivers: %w", err)
	}
	return nil
})

const (
	i2cHint     = "enable I²C with raspi-config (Interface Options → I2C) or dtparam=i2c_arm=on in /boot/firmware/config.txt, then reboot"
	oneWireHint = "enable 1-Wire with raspi-config (Interface Options → 1-Wire) or dtoverlay=w1-gpio (data on GPIO4) in /boot/firmware/config.txt, then reboot"
	gpioHint    = "edged needs the GPIO character device (/dev/gpiochip*) or sysfs GPIO, and a user in the gpio group"
)

// OpenI2C opens a host I²C bus: "1", "/dev/i2c-1" and "I2C1" name the same
// bus; "" is the first one.
func OpenI2C(name string) (i2c.BusCloser, error) {
	if err := hostInit(); err != nil {
		return nil, err
	}
	refs := i2creg.All()
	if len(refs) == 0 {
		return nil, fmt.Errorf("%w: cannot open I²C bus %q: no I²C bus on this machine (no /dev/i2c-*): %s", ErrNoHardware, name, i2cHint)
	}
	b, err := i2creg.Open(strings.TrimPrefix(name, "/dev/i2c-"))
	if err != nil {
		var have []string
		for _, r := range refs {
			have = append(have, strconv.Itoa(r.Number))
		}
		return nil, fmt.Errorf("%w: cannot open I²C bus %q (%v); this machine has bus %s", ErrNoHardware, name, err, strings.Join(have, ", "))
	}
	return b, nil
}

// OpenOneWire opens a host 1-Wire bus through the kernel's w1 netlink
// interface ("" is the first one).
func OpenOneWire(name string) (onewire.BusCloser, error) {
	if err := hostInit(); err != nil {
		return nil, err
	}
	if len(onewirereg.All()) == 0 {
		return nil, fmt.Errorf("%w: cannot open 1-Wire bus %q: no 1-Wire bus on this machine: %s (or use backend: sysfs)", ErrNoHardware, name, oneWireHint)
	}
	b, err := onewirereg.Open(name)
	if err != nil {
		return nil, fmt.Errorf("%w: cannot open 1-Wire bus %q: %v", ErrNoHardware, name, err)
	}
	return b, nil
}

// OpenPin looks up a host GPIO pin by its BCM name ("GPIO17") or an alias
// the host registers (such as "P1_11" on a Raspberry Pi).
func OpenPin(name string) (gpio.PinIO, error) {
	if err := hostInit(); err != nil {
		return nil, err
	}
	all := gpioreg.All()
	if len(all) == 0 {
		return nil, fmt.Errorf("%w: no GPIO pins on this machine (looking for %q): %s", ErrNoHardware, name, gpioHint)
	}
	if p := gpioreg.ByName(name); p != nil {
		return p, nil
	}
	var have []string
	for _, p := range all {
		have = append(have, p.Name())
	}
	if len(have) > 8 {
		have = append(have[:8], "…")
	}
	return nil, fmt.Errorf("%w: no GPIO pin named %q: use a BCM name like GPIO17 (header pin 11); this machine has %s", ErrNoHardware, name, strings.Join(have, ", "))
}
