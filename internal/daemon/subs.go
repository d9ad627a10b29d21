package daemon

import (
	"fmt"
	"time"

	"github.com/edged-io/edged/internal/config"
	"github.com/edged-io/edged/internal/mqttconn"
	"github.com/edged-io/edged/internal/mqttout"
	"github.com/edged-io/edged/sensors"
	"github.com/edged-io/edged/sensors/payload"
)

// mqttConn is how the daemon's MQTT clients reach the broker: the
// configured (or embedded) broker, the username, the password read from
// its file, mqtt.tls's files read and parsed, the reconnect cap. Each
// client sets its own client id.
func (d *Daemon) mqttConn() (mqttconn.Options, error) {
	c := d.cfg
	password, err := config.Secret(c.MQTT.PasswordFile)
	if err != nil {
		return mqttconn.Options{}, err
	}
	tc, err := c.MQTTTLSConfig()
	if err != nil {
		return mqttconn.Options{}, err
	}
	return mqttconn.Options{Broker: d.brokerURL(), ClientID: c.MQTT.ClientID, Username: c.MQTT.Username, Password: password,
		TLS: tc, MaxReconnectInterval: time.Duration(c.MQTT.ReconnectMax)}, nil
}

// mqttSourceOptions are the MQTT source's options: the broker connection
// under the configured client id, with the daemon's clock and logger.
func (d *Daemon) mqttSourceOptions(conn mqttconn.Options, subs []sensors.MQTTSubscription, rejects sensors.Rejecter) sensors.MQTTOptions {
	conn.ClientID = d.cfg.MQTT.ClientID
	return sensors.MQTTOptions{Conn: conn, Subscriptions: subs, Rejects: rejects,
		Logger: d.logger.With("component", "mqtt"), Now: d.now}
}

// windowOutputOptions are the options of the publisher of closed windows.
func (d *Daemon) windowOutputOptions(conn mqttconn.Options) mqttout.Options {
	conn.ClientID = d.cfg.MQTT.ClientID + "-out"
	return mqttout.Options{Conn: conn, Logger: d.logger.With("component", "mqtt-output")}
}

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
