package daemon

import (
	"fmt"

	"github.com/edged-io/edged/internal/config"
	"github.com/edged-io/edged/sensors"
	"github.com/edged-io/edged/sensors/payload"
)

// buildSubscriptions turns the configured subscriptions into decoders.
func buildSubscriptions(c *config.Config) ([]sensors.MQTTSubscription, error) {
	var subs []sensors.MQTTSubscription
	for i, s := range c.MQTT.Subscriptions {
		dec, err := payload.New(s.Config, c.Device)
		if err != nil {
			return nil, fmt.Errorf("mqtt.subscriptions[%d] (%s): %w", i, s.Topic, err)
		}
		subs = append(subs, sensors.MQTTSubscription{Filter: s.Topic, QoS: byte(*s.QoS), Decoder: dec})
	}
	return subs, nil
}
