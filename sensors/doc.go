// Package sensors holds the sources of readings: a seeded simulator for
// demos, tests and benchmarks (Sim); Linux thermal zones (Thermal); MQTT
// subscriptions (MQTT) whose payloads are decoded by sensors/payload; and,
// to come, periph.io drivers for I²C, 1-Wire and GPIO sensors. A source
// hands each ingest event to a Sink (the write-ahead log) and nothing else:
// it never aggregates or alerts.
//
// # Lossless MQTT ingest
//
// The MQTT source keeps a persistent session under a fixed client id,
// subscribes with QoS 1 and acknowledges a message only when the log record
// holding its readings is durable, in receive order. A crash therefore loses
// nothing the broker accepted: unacknowledged messages are redelivered.
// Redelivery is at-least-once: a message whose record became durable but
// whose acknowledgement was lost is appended again; readings carry their
// identity (device, series, event time), and payloads with timestamps are
// deduplicated downstream. Messages without a timestamp get the ingest time,
// so a redelivered copy of one is a new reading.
//
// The broker must not drop what it accepted: mosquitto's defaults
// (max_inflight_messages 20, max_queued_messages 1000) drop QoS 1 messages
// for a subscriber that acknowledges after fsync while a fast publisher
// floods it. Raise both on brokers that feed edged.
package sensors
