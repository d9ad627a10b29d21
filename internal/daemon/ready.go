package daemon

import (
	"context"
	"time"
)

// readyTimeout bounds how long systemd waits for READY while the MQTT
// broker has not acknowledged the subscriptions: a broker that is down at
// boot must not fail edged's start (it ingests its local sensors
// meanwhile). A variable for tests.
var readyTimeout = 30 * time.Second

// closedChan stands for a subscription acknowledged long ago.
var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// subscribed is closed once the MQTT source's subscriptions are
// acknowledged by the broker; at once without an MQTT source.
func (d *Daemon) subscribed() <-chan struct{} {
	if d.mqtt == nil {
		return closedChan
	}
	return d.mqtt.Subscribed()
}

// readiness is what /readyz answers: ready once the components run and
// the broker has acknowledged the MQTT subscriptions (before that,
// messages published to them are not addressed to edged).
func (d *Daemon) readiness() (ready bool, why string) {
	if !d.ready.Load() {
		return false, "not ready"
	}
	select {
	case <-d.subscribed():
		return true, "ready"
	default:
		return false, "not ready: waiting for the MQTT broker to acknowledge the subscriptions"
	}
}

// awaitSubscribed waits until the MQTT subscriptions are acknowledged, or
// readyTimeout has passed (then /readyz keeps waiting, systemd does not).
// It reports false when ctx ends or a component fails first.
func (d *Daemon) awaitSubscribed(ctx context.Context, failed <-chan struct{}) bool {
	t := time.NewTimer(readyTimeout)
	defer t.Stop()
	select {
	case <-d.subscribed():
		return true
	case <-t.C:
		d.logger.Warn("the MQTT broker has not acknowledged the subscriptions yet: telling systemd that edged started; /readyz says not ready until it does",
			"broker", d.brokerURL(), "waited", readyTimeout)
		return true
	case <-ctx.Done():
	case <-failed:
	}
	return false
}
