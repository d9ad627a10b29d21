// Package sensors holds the sources of readings: a seeded simulator for
// demos, tests and benchmarks; Linux thermal zones; MQTT subscriptions with
// payload formats (plain numbers, JSON field paths with Zigbee2MQTT,
// Tasmota, Shelly and ESPHome presets, InfluxDB line protocol); and
// periph.io drivers for I²C, 1-Wire and GPIO sensors. Every source appends
// to the write-ahead log and nothing else: it never aggregates or alerts.
//
// The sources arrive with the speed-layer and Raspberry Pi issues; until
// then the package holds only this documentation.
package sensors
