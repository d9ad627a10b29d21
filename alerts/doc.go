// Package alerts evaluates threshold, rate-of-change and absence rules on
// raw series and window aggregates in-stream, runs the restart-safe alert
// state machine (inactive → pending → firing → resolved), delivers alerts
// over MQTT with retained state, and publishes Home Assistant discovery.
//
// It arrives with the alerts issue; until then the package holds only this
// documentation.
package alerts
