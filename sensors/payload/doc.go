// Package payload decodes MQTT messages into readings. Each subscription
// has a Config naming a format; New turns it into a Decoder, a pure
// function of (topic, payload, ingest time) that appends readings. There
// is no MQTT client here: sensors' MQTT source calls Decode and sends the
// errors to the dead-letter store (sensors/deadletter).
//
// A subscription's decoder in YAML (the daemon's config nests it under a
// topic filter):
//
//	format: json
//	series: "{2}/{field}"          # site/greenhouse/state → greenhouse/temperature
//	fields:
//	  - {path: env.temp, series: temperature, unit: °C}
//	  - {path: "env.hum", series: humidity, unit: "%"}
//	time: {path: ts, format: unix_ms}
//
// # Formats
//
//   - number: the payload is one decimal number, white space around it
//     allowed: "21.5", "-3", "1e3". Not "", "NaN", "inf", "0x10" or "21.5°C".
//   - json: values at configured field paths (Config.Fields), or, with no
//     fields, every numeric leaf named by its path ("a/b/0/c"; a document
//     that is a bare number is named "value"). Booleans are 1/0 only with
//     Config.Booleans, numeric strings are values only with
//     Config.Strings. With no fields, leaves that are not values are
//     skipped; a configured field that holds one is reported.
//   - line: InfluxDB line protocol, any number of lines. Every numeric
//     field of a point is a value: floats, integers (1i) and unsigned
//     integers (1u) as float64 (exact up to 2^53), booleans as 1/0 with
//     Config.Booleans. String fields are skipped, not rejected (Telegraf
//     mixes them into numeric points); a payload of nothing but strings is
//     no_values. Escapes follow the reference: "\," and "\ " in
//     measurements, also "\=" in tag keys, tag values and field keys,
//     "\"" and "\\" in strings. Lines starting with # are comments; CRLF
//     is accepted.
//   - zigbee2mqtt, tasmota, shelly, esphome: presets, below.
//
// # Series names
//
// Config.Series is a template. {topic} is the topic; {1}, {2}, … its
// segments counted from 1, {-1}, {-2}, … counted from the end; {device}
// the device id; {field} the value's name within the payload: the field's
// series (or path) for json, the field key for line, the preset's name for
// presets. Line protocol adds {measurement}, {tags} (",k=v" for every tag,
// sorted by key, unescaped) and {tag:KEY} (a missing tag is
// missing_field). Defaults:
//
//	number   {topic}                        greenhouse/temp
//	json     {topic}/{field}                greenhouse/state/temperature
//	line     {measurement}{tags}/{field}    weather,location=us/temperature
//	presets  {field}                        kitchen/BME280/Temperature
//
// A name that comes out empty, longer than edged.MaxStringLen, not UTF-8
// or with control characters is rejected (bad_name); a template naming a
// topic segment the topic lacks is bad_topic.
//
// # Presets
//
// Presets decode the topics of their layout and return no readings and no
// error for every other topic, so that a subscription to zigbee2mqtt/#
// or shellies/# can be used as is. Non-numeric values are skipped, not
// errors. Units are assigned per value; QuantityOf gives the Home
// Assistant device class of the Zigbee2MQTT/ESPHome names.
//
// Zigbee2MQTT: <base>/<friendly_name> (the friendly name may hold
// slashes) with the device's state as a JSON object. Ignored:
// <base>/bridge/…, …/availability, …/set…, …/get…. Series
// <friendly_name>/<key> for every top-level number (nested objects such
// as color and update are not sensor values). Units and device classes:
//
//	temperature, local_temperature, device_temperature  °C   temperature
//	humidity                                            %    humidity
//	soil_moisture                                       %    moisture
//	pressure                                            hPa  atmospheric_pressure
//	battery                                             %    battery
//	voltage                                             mV   voltage (V when the message also has power, current or energy: a mains meter)
//	illuminance, illuminance_lux                        lx   illuminance
//	co2                                                 ppm  carbon_dioxide
//	voc                                                 ppb  volatile_organic_compounds_parts
//	pm25, pm10                                          µg/m³ pm25, pm10
//	linkquality                                         lqi  (none)
//	power, current, energy                              W, A, kWh  power, current, energy
//
// Other numbers get Config.Unit. The event time is last_seen when the
// device publishes it (epoch ms, or ISO 8601 with a zone), else the
// ingest time.
//
// Tasmota: <prefix>/<device>/SENSOR (normally tele/<device>/SENSOR), and
// <prefix>/<device>/STATUS8 or STATUS10 whose StatusSNS object is the same.
// Other topics (STATE, RESULT, LWT, …) are ignored. Series
// <device>/<sensor>/<value>, e.g. kitchen/BME280/Temperature,
// kitchen/DS18B20-1/Temperature, plug/ENERGY/Power; arrays add the index
// (plug/ENERGY/Power/0). Top-level scalars (Time, Epoch, TempUnit,
// PressureUnit) are metadata. Units: Temperature*, DewPoint in °C or °F
// per TempUnit; Pressure, SeaPressure per PressureUnit (default hPa);
// Humidity %; Illuminance lx; CarbonDioxide, eCO2 ppm; TVOC ppb; PM* µg/m³;
// Distance cm; Gas kΩ; ENERGY Total/Today/Yesterday kWh, Period Wh,
// Power W, ApparentPower VA, ReactivePower var, Voltage V, Current A,
// Frequency Hz, Factor none. Time: Tasmota writes local time without a
// zone, so the event time is Epoch when present (Unix seconds); else Time
// when it has a zone offset; else Time read in Config.Timezone when set;
// else the ingest time (flagged edged.TimeFromIngest).
//
// Shelly Gen1: shellies/<id>/sensor/<name> (temperature °C, humidity %,
// battery %, lux lx, tilt °, concentration ppm) → <id>/<name>;
// shellies/<id>/<relay|emeter|light|roller|white|color>/<n>/<quantity>
// (power W, reactive_power var, voltage V, current A, pf, pos %, total
// and total_returned Wh, energy and returned_energy converted from
// watt-minutes to Wh) → <id>/<kind>/<n>/<quantity>;
// shellies/<id>/temperature (°C) and shellies/<id>/voltage (V) →
// <id>/temperature, <id>/voltage. Gen1 H&T reports in the unit set on the
// device; edged assumes °C. Other Gen1 topics (announce, online, relay/0
// "on", input/0, sensor/illumination "dark", …) are ignored.
//
// Shelly Gen2+: <id>/status/<component>:<n> with the component's status
// object ("Generic status update over MQTT"), and <id>/events/rpc with
// NotifyStatus/NotifyFullStatus, whose params hold component objects and
// ts, the event time (Unix seconds); status topics take the ingest time.
// Series <id>/<component>:<n>/<field path with "/">, e.g.
// shellyhtg3-84fce63bd90c/temperature:0/tC. Fields taken:
// temperature tC °C; humidity rh %; devicepower battery.percent %,
// battery.V V; illuminance lux lx; voltmeter voltage V; switch, pm1,
// cover, light apower W, voltage V, current A, freq Hz, pf,
// aenergy.total and ret_aenergy.total Wh (switch, cover, light also
// temperature.tC °C; cover current_pos %, light brightness %); em1
// act_power W, aprt_power VA, voltage, current, freq, pf; em1data
// total_act_energy, total_act_ret_energy Wh; em a/b/c/total act_power W,
// a/b/c voltage V, a/b/c/total current A; emdata total_act,
// total_act_ret Wh. Other components and fields are ignored.
//
// ESPHome: <prefix>/sensor/<name>/state, one number ("nan" when the
// sensor failed, rejected as non_finite) → <prefix>/<name>, unit from
// QuantityOf(name) (e.g. "temperature" °C) else Config.Unit: the state
// topic carries no unit. With Config.Booleans,
// <prefix>/binary_sensor/<name>/state ON/OFF → 1/0. Other topics ignored.
//
// # Event time
//
// A reading's Time is the payload's timestamp when the format has one
// (json: Config.Time; line: the point's timestamp at the precision of
// Config.Time.Format, default ns; presets: above), else the ingest time
// with edged.TimeFromIngest. A payload timestamp more than MaxFuture after
// the ingest time, or before MinTime (2020-01-01), is kept but flagged
// edged.TimeAbsurd, and the aggregator keeps it out of current windows.
// The decoders do not know whether the local clock is synchronised; the
// daemon adds edged.ClockUnsynced to readings stamped with the ingest
// clock while it is unsynchronised (clock.require_sync). A configured
// timestamp that is missing is not an error (the reading takes the ingest
// time); one that is present but unparsable is bad_timestamp, and the
// values are kept with the ingest time.
//
// # Errors and partly good messages
//
// Every rejected message, or message with rejected parts, yields exactly
// one *Error whose Reason is one of Reasons(); its Detail names the first
// problem and counts the others, and Error() adds what to do. Whatever a
// Decode call appends is good data, even when it returns an error:
//
//   - too_large (over Config.MaxPayload, default 256 KiB) and empty are
//     checked before parsing; nothing is decoded.
//   - invalid_json rejects the whole message: a truncated document can
//     end in a truncated number.
//   - line_syntax rejects its line; the other lines are kept.
//   - not_numeric, non_finite, missing_field, bad_name, bad_topic reject
//     one value; the other values of the message are kept.
//   - bad_timestamp keeps the values, stamped with the ingest time.
//   - no_values: the message parsed but held no value.
//
// Decoders never panic on any input (fuzzed), never retain the payload,
// are safe for concurrent use and, once warm, allocate nothing per
// message: JSON is read by a validating streaming scanner (several times
// faster than encoding/json), and series names are interned.
package payload
