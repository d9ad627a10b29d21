package hass

import "strings"

// byUnit maps a unit to the device class it implies on its own. Only units
// Home Assistant accepts for the class are listed: a class with a unit it
// does not know makes Home Assistant reject the entity, while an entity
// without a class accepts any unit.
var byUnit = map[string]string{
	"°C": "temperature", "°F": "temperature", "K": "temperature",

	"Pa": "pressure", "hPa": "pressure", "kPa": "pressure", "cbar": "pressure", "bar": "pressure",
	"mbar": "pressure", "mmHg": "pressure", "inHg": "pressure", "psi": "pressure",

	"µV": "voltage", "mV": "voltage", "V": "voltage", "kV": "voltage", "MV": "voltage",
	"mA": "current", "A": "current",
	"mW": "power", "W": "power", "kW": "power", "MW": "power", "GW": "power", "TW": "power",
	"VA": "apparent_power", "var": "reactive_power",
	"Wh": "energy", "kWh": "energy", "MWh": "energy", "GWh": "energy", "TWh": "energy",
	"MJ": "energy", "GJ": "energy",

	"lx":   "illuminance",
	"W/m²": "irradiance",
	"dBm":  "signal_strength",
	"Hz":   "frequency", "kHz": "frequency", "MHz": "frequency", "GHz": "frequency",
	"ms": "duration", "s": "duration", "min": "duration", "h": "duration", "d": "duration",
	"mm": "distance", "cm": "distance", "m": "distance", "km": "distance",
	"m/s": "speed", "km/h": "speed",
	"mm/h": "precipitation_intensity",
}

// cumulative classes count up from a reset point (meters).
var cumulative = map[string]bool{"energy": true, "gas": true, "water": true}

// Classes infers a series' Home Assistant device class and state class
// from its unit and, where the unit alone is ambiguous, its name:
//
//   - °C, °F, K: temperature; Pa … psi: pressure; V, A, W, VA, var: voltage,
//     current, power, apparent and reactive power; lx: illuminance; Hz,
//     s, m, m/s, …: frequency, duration, distance, speed;
//   - Wh, kWh, …: energy, with state class total_increasing;
//   - %: humidity when the name says humid (or "rh"), moisture for moist or
//     soil, battery for batt; otherwise no class;
//   - ppm: carbon_dioxide when the name says co2, carbon_monoxide for co,
//     volatile_organic_compounds_parts for voc; ppb only for voc;
//   - µg/m³: pm25, pm10, pm1 or volatile_organic_compounds by name;
//   - dB: signal_strength for rssi or signal, sound_pressure for noise or
//     sound; dBm: signal_strength;
//   - m³: gas or water by name (total_increasing).
//
// The state class is measurement unless the class is cumulative. Unknown
// units get no device class.
func Classes(unit, series string) (deviceClass, stateClass string) {
	deviceClass = byUnit[unit]
	if deviceClass == "" {
		deviceClass = byName(unit, series)
	}
	if cumulative[deviceClass] {
		return deviceClass, "total_increasing"
	}
	return deviceClass, "measurement"
}

func byName(unit, series string) string {
	name := strings.ToLower(series)
	words := strings.FieldsFunc(name, func(r rune) bool {
		return (r < 'a' || r > 'z') && (r < '0' || r > '9')
	})
	has := func(subs ...string) bool {
		for _, s := range subs {
			if strings.Contains(name, s) {
				return true
			}
		}
		return false
	}
	word := func(ws ...string) bool {
		for _, w := range words {
			for _, x := range ws {
				if w == x {
					return true
				}
			}
		}
		return false
	}
	switch unit {
	case "%":
		switch {
		case has("humid") || word("rh"):
			return "humidity"
		case has("moist", "soil"):
			return "moisture"
		case has("batt"):
			return "battery"
		}
	case "ppm":
		switch {
		case has("co2", "carbon_dioxide", "carbon dioxide"):
			return "carbon_dioxide"
		case word("co") || has("carbon_monoxide", "carbon monoxide"):
			return "carbon_monoxide"
		case has("voc"):
			return "volatile_organic_compounds_parts"
		}
	case "ppb":
		if has("voc") {
			return "volatile_organic_compounds_parts"
		}
	case "µg/m³":
		switch {
		case has("pm2.5", "pm25", "pm2_5"):
			return "pm25"
		case has("pm10"):
			return "pm10"
		case has("pm1"):
			return "pm1"
		case has("voc"):
			return "volatile_organic_compounds"
		}
	case "dB":
		switch {
		case has("rssi", "signal"):
			return "signal_strength"
		case has("noise", "sound"):
			return "sound_pressure"
		}
	case "m³":
		switch {
		case has("gas"):
			return "gas"
		case has("water"):
			return "water"
		}
	}
	return ""
}
