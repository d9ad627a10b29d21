// Package periph holds the sensor drivers that talk to hardware through
// periph.io: BME280/BMP280 (I²C), DS18B20 (1-Wire), ADS1115/ADS1015 ADC
// (I²C) and a GPIO pulse counter. Each is a sensors.Source: Run polls at
// the configured interval and appends the readings of one poll as one
// record, stamped with the ingest clock (edged.TimeFromIngest).
//
// # Drivers
//
//   - BME280: temperature (°C), pressure (hPa) and, on a BME280, relative
//     humidity (%), through periph's bmxx80 driver; oversampling per
//     quantity and the IIR filter are configurable.
//   - DS18B20: temperature (°C) of one, several or all thermometers on a
//     1-Wire bus, read through the kernel's w1-gpio/w1_therm sysfs files
//     (the usual Raspberry Pi setup, dtoverlay=w1-gpio) or a periph.io
//     1-Wire bus. Bad CRCs, the 85 °C power-on value and all-zero
//     scratchpads are rejected, never stored.
//   - ADS1x15: one series per channel (single-ended or differential), with
//     per-channel gain and a linear scale and offset into any unit.
//   - Pulse: counts edges on a GPIO pin in its own goroutine and emits per
//     interval the count, the rate (Hz) and optionally a scaled rate (e.g.
//     L/min from litres per pulse).
//
// Every driver has a Config with YAML tags and a Validate method, a
// constructor that takes the config, the device id, a *slog.Logger and an
// opener (I2COpener, OneWireOpener, PinOpener; nil means the host's, via
// periph.io's host drivers), a Series method that lists each series with
// its unit and Home Assistant device class, and a Stats method.
//
// # Errors and retries
//
// Constructors touch no hardware. Run first opens the bus or pin and
// checks that the device answers; if it cannot (no /dev/i2c-*, no such
// pin, nothing at the address, no 1-Wire sensor) Run returns an error that
// wraps ErrNoHardware, names the bus, address or pin and says what to do
// (enable I²C with raspi-config, check the address with i2cdetect, …).
// The daemon logs it and keeps its other sources running.
//
// Once running, a driver never gives up on a read error (a NACK, a bus
// timeout, a sensor unplugged for a while): it logs a warning naming the
// sensor, bus and address, counts the error in Stats, and tries again after
// MinBackoff, doubling the wait after each further failure up to
// MaxBackoff; I²C chips are set up again before the retry, as they may have
// lost power. The first good poll returns to the configured interval. Run
// returns an error only when the Sink fails.
//
// # Testing without hardware
//
// The tests replay bus transactions recorded from real chips with
// periph's i2ctest and onewiretest Playback (several are those of the
// periph drivers' own tests), inject NACKs and timeouts between them, feed
// a fake pin with edges, and build fake w1 sysfs trees; testing/synctest
// makes intervals, conversion delays and backoff take no real time.
package periph
