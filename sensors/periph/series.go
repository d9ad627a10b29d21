package periph

// SeriesInfo describes one series a driver produces, for Home Assistant
// discovery and the series API.
type SeriesInfo struct {
	Series string
	Unit   string
	// DeviceClass is the Home Assistant sensor device class ("" if none
	// fits): temperature, humidity, atmospheric_pressure, voltage, …
	DeviceClass string
}

// deviceClasses maps units to the Home Assistant device class they imply.
// "%" is left out on purpose: it is humidity, moisture or battery
// depending on the sensor, so drivers set it themselves.
var deviceClasses = map[string]string{
	"°C": "temperature", "°F": "temperature", "K": "temperature",
	"Pa": "pressure", "hPa": "pressure", "kPa": "pressure", "bar": "pressure", "mbar": "pressure",
	"psi": "pressure", "inHg": "pressure", "mmHg": "pressure",
	"V": "voltage", "mV": "voltage",
	"A": "current", "mA": "current",
	"W": "power", "kW": "power",
	"Wh": "energy", "kWh": "energy",
	"Hz": "frequency", "kHz": "frequency",
	"lx": "illuminance",
	"L":  "volume", "mL": "volume", "m³": "volume", "gal": "volume",
	"L/min": "volume_flow_rate", "mL/s": "volume_flow_rate", "m³/h": "volume_flow_rate",
	"gal/min": "volume_flow_rate", "ft³/min": "volume_flow_rate",
	"m": "distance", "cm": "distance", "mm": "distance",
	"m/s": "speed", "km/h": "speed",
}

// DeviceClass returns the Home Assistant sensor device class a unit
// implies, or "" when the unit does not determine one (including "%",
// "pulses" and units Home Assistant has no class for, such as "L/s").
func DeviceClass(unit string) string { return deviceClasses[unit] }
