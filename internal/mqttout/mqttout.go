// Package mqttout publishes edged's own messages (closed windows today,
// alerts later) to an MQTT broker through a bounded queue, so that a slow
// or absent broker never blocks the aggregator: when the queue is full the
// message is dropped and counted.
package mqttout

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/edged-io/edged/internal/mqttconn"
)

// Message is one outgoing publication.
type Message struct {
	Topic    string
	Payload  []byte
	QoS      byte
	Retained bool
}

// Options configure a Publisher.
type Options struct {
	// Conn is the broker, the credentials, TLS and the reconnect cap.
	Conn mqttconn.Options
	// Queue bounds messages waiting to be sent. Default 10,000.
	Queue  int
	Logger *slog.Logger
}

// Publisher sends queued messages; Run owns the client.
type Publisher struct {
	o     Options
	queue chan Message

	sent, dropped atomic.Uint64
	connected     atomic.Bool
}

// New returns a publisher; it does not connect until Run.
func New(o Options) (*Publisher, error) {
	if err := o.Conn.Validate(); err != nil {
		return nil, err
	}
	if o.Queue == 0 {
		o.Queue = 10_000
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Publisher{o: o, queue: make(chan Message, o.Queue)}, nil
}

// Publish queues m; it never blocks. It reports false (and counts a drop)
// when the queue is full.
func (p *Publisher) Publish(m Message) bool {
	select {
	case p.queue <- m:
		return true
	default:
		p.dropped.Add(1)
		return false
	}
}

// Stats are the publisher's counters.
type Stats struct {
	Sent, Dropped uint64
	Queued        int
	Connected     bool
}

// Stats returns the counters.
func (p *Publisher) Stats() Stats {
	return Stats{p.sent.Load(), p.dropped.Load(), len(p.queue), p.connected.Load()}
}

// Run connects (retrying) and sends until ctx ends.
func (p *Publisher) Run(ctx context.Context) error {
	// The logger gets failed connection attempts: paho retries them quietly.
	o := p.o.Conn.ClientOptions(p.o.Logger).
		SetAutoReconnect(true).SetConnectRetry(true).SetConnectRetryInterval(time.Second).
		SetOnConnectHandler(func(mqtt.Client) { p.connected.Store(true) }).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) {
			p.connected.Store(false)
			p.o.Logger.Warn("mqtt output: connection lost; reconnecting", "broker", p.o.Conn.Broker, "err", err)
		})
	c := mqtt.NewClient(o)
	first := c.Connect() // completes once connected: ConnectRetry keeps trying
	defer func() { c.Disconnect(250); p.connected.Store(false) }()
	// Messages wait in the queue until the first connection: paho would
	// keep one published before it in its store, which the clean session's
	// connect empties, and its token would never complete.
	select {
	case <-first.Done():
	case <-ctx.Done():
		return nil
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case m := <-p.queue:
			tok := c.Publish(m.Topic, m.QoS, m.Retained, m.Payload)
			if m.QoS > 0 {
				select {
				case <-tok.Done():
				case <-ctx.Done():
					return nil
				}
			}
			if tok.Error() != nil {
				p.dropped.Add(1)
				continue
			}
			p.sent.Add(1)
		}
	}
}
