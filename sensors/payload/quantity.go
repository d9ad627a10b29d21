package payload

import "strings"

// Quantity is what edged knows about a named physical quantity: its unit
// and its Home Assistant classes (for MQTT discovery).
type Quantity struct {
	Unit string
	// DeviceClass is the Home Assistant sensor device class, "" if none.
	DeviceClass string
	// StateClass is "measurement", or "total_increasing" for meters.
	StateClass string
}

// quantities maps lower-case field names, as Zigbee2MQTT and ESPHome
// name them, to quantities.
var quantities = map[string]Quantity{
	"temperature":        {"°C", "temperature", "measurement"},
	"local_temperature":  {"°C", "temperature", "measurement"},
	"device_temperature": {"°C", "temperature", "measurement"},
	"humidity":           {"%", "humidity", "measurement"},
	"soil_moisture":      {"%", "moisture", "measurement"},
	"pressure":           {"hPa", "atmospheric_pressure", "measurement"},
	"battery":            {"%", "battery", "measurement"},
	"voltage":            {"mV", "voltage", "measurement"},
	"illuminance":        {"lx", "illuminance", "measurement"},
	"illuminance_lux":    {"lx", "illuminance", "measurement"},
	"co2":                {"ppm", "carbon_dioxide", "measurement"},
	"voc":                {"ppb", "volatile_organic_compounds_parts", "measurement"},
	"pm25":               {"µg/m³", "pm25", "measurement"},
	"pm10":               {"µg/m³", "pm10", "measurement"},
	"linkquality":        {"lqi", "", "measurement"},
	"power":              {"W", "power", "measurement"},
	"current":            {"A", "current", "measurement"},
	"energy":             {"kWh", "energy", "total_increasing"},
}

// QuantityOf returns the quantity of a field named as Zigbee2MQTT or
// ESPHome name them ("temperature", "co2", …; case-insensitive), or false.
// Zigbee2MQTT's "voltage" is mV on battery devices and V on mains meters;
// QuantityOf returns mV, the decoder decides per message.
func QuantityOf(field string) (Quantity, bool) {
	q, ok := quantities[field]
	if !ok {
		q, ok = quantities[strings.ToLower(field)]
	}
	return q, ok
}
