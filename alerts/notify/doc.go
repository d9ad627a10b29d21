// Package notify delivers alert events to an MQTT broker with retained
// current state, keeps the device's online/offline status topic, and
// publishes Home Assistant discovery configs (built by alerts/hass).
//
// A Publisher is fed by the alert engine's goroutine through Publish, which
// never blocks, and drained by its own Run loop, which owns the MQTT client.
//
// # Topics and payloads
//
// An event goes to <prefix>/<device>/alerts/<rule>/<series> (a series'
// '/' become topic levels) with QoS 1 and the retain flag, so a client that
// subscribes later sees every alert's current state. The payload is a JSON
// object:
//
//	{"rule":"too_hot","device":"pi","series":"greenhouse/temperature",
//	 "state":"firing","value":31.2,"threshold":30,"severity":"warning",
//	 "labels":{"zone":"north"},"started":"2025-06-01T12:00:00Z",
//	 "event_id":"…","renotify":false}
//
// value and threshold are null when not finite; resolved (RFC 3339, UTC)
// appears once the alert resolved; started is omitted when unknown.
//
// <prefix>/<device>/status holds "online" (published, retained, on every
// connection) or "offline" (published on a clean stop, and by the broker as
// the last will when the connection dies).
//
// # Delivery
//
// Events wait in a bounded FIFO. Run publishes them in order, a few at a
// time, and an event leaves the queue only once the broker has acknowledged
// it (PUBACK). When the connection fails, unacknowledged events stay at the
// head of the queue and are sent again, in order, after reconnecting: the
// broker may see an event twice (QoS 1 is at-least-once), never out of
// order, and nothing is lost while the queue has room. Each connection is a
// fresh MQTT client under the same client id and a persistent session;
// paho's own resending of in-flight messages is not relied on, because it
// completes the original tokens without waiting for the broker.
//
// When the queue is full, Publish coalesces: of the events not yet handed
// to the broker, only the latest per topic is kept, in the order of those
// survivors. The retained state every topic ends with is unchanged; only
// intermediate transitions are lost, and they are counted (Stats.Coalesced)
// and a warning is logged once per episode. Nothing else is dropped: if
// every queued event is for a different topic the queue grows past its
// limit (by at most the number of alert instances).
//
// On a clean stop Run keeps sending for up to Options.DrainTimeout, then
// publishes "offline" and disconnects.
//
// # Restart safety
//
// Every event carries the (LSN, Seq) of the input record that produced it,
// a strict total order. The publisher remembers the highest pair the broker
// acknowledged and saves it, atomically, in <StateDir>/alerts-delivered
// after the queue drains, every few hundred events, and when Run returns.
// When edged restarts, the alert engine replays the log and emits again the
// events of the replayed range; Publish skips those at or below the saved
// mark, so subscribers are not notified twice. A crash between a PUBACK and
// the next save re-announces at most those events: at-least-once again,
// never a loss.
//
// # Home Assistant
//
// With Options.Discovery enabled, AnnounceSeries and AnnounceAlert
// remember discovery configs (deduplicated by config topic) and publish
// them, retained: on every connection after "online" and before any queued
// event, as soon as they are announced, and again whenever Home Assistant
// publishes "online" on its status topic (Home Assistant restarted and lost
// its non-retained state). An alert instance that was not announced is
// announced when its first event is published, so every alert shows up as
// a problem binary_sensor before its state arrives.
package notify
