package sensors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/edged-io/edged"
	"github.com/edged-io/edged/internal/mqttconn"
)

// Decoder turns one MQTT message into readings (see sensors/payload).
type Decoder interface {
	Decode(dst []edged.Reading, topic string, payload []byte, ingest int64) ([]edged.Reading, error)
}

// Rejecter receives the messages a decoder refused (a dead-letter store).
type Rejecter interface {
	Reject(topic string, payload []byte, err error)
}

// MQTTSubscription is one topic filter and how to decode its messages.
type MQTTSubscription struct {
	Filter  string // MQTT topic filter, + and # allowed
	QoS     byte   // 0 or 1; 1 is what makes ingest lossless
	Decoder Decoder
}

// MQTTOptions configure the MQTT source.
type MQTTOptions struct {
	// Conn is the broker, the credentials, TLS and the reconnect cap. Its
	// ClientID must be fixed across restarts: the broker keeps the
	// persistent session (subscriptions and unacknowledged messages) under
	// it.
	Conn mqttconn.Options
	// Subscriptions in match order: the first filter that matches a topic
	// decodes its message.
	Subscriptions []MQTTSubscription
	// AckQueue bounds messages appended to the log and waiting for
	// durability before their acknowledgement. Default 4096.
	AckQueue int
	// DrainTimeout bounds how long a stop waits to acknowledge messages
	// that are in the log but not yet durable. Default 2s.
	DrainTimeout time.Duration
	// Rejects receives undecodable messages (nil: dropped after counting).
	Rejects Rejecter
	Logger  *slog.Logger
	Now     func() time.Time
}

// MQTT subscribes to topic filters and appends every decoded message to
// the log. Ingest loses nothing: the session is persistent (fixed client
// id, clean session off), subscriptions are QoS 1, and a message is
// acknowledged to the broker only once its record is durable, in receive
// order. Until then the broker holds it and redelivers it after a crash or
// a reconnect: the broker is the replay buffer for what is not yet durable.
// A message that cannot be decoded is counted, handed to Rejects and
// acknowledged: bad input never stops ingest.
type MQTT struct {
	opts MQTTOptions

	messages, readings, rejected, acked atomic.Uint64
	connected                           atomic.Bool
	subscribed                          chan struct{} // closed at the first SUBACK
	subscribeOnce                       sync.Once
}

var _ Source = (*MQTT)(nil)

// NewMQTT checks the options. It does not connect; Run does.
func NewMQTT(o MQTTOptions) (*MQTT, error) {
	if o.Conn.ClientID == "" {
		return nil, errors.New("mqtt: a fixed client id is required for a persistent session")
	}
	if err := o.Conn.Validate(); err != nil {
		return nil, err
	}
	if len(o.Subscriptions) == 0 {
		return nil, errors.New("mqtt: no subscriptions")
	}
	for _, s := range o.Subscriptions {
		if err := validFilter(s.Filter); err != nil {
			return nil, err
		}
		if s.QoS > 1 || s.Decoder == nil {
			return nil, fmt.Errorf("mqtt: subscription %q: QoS must be 0 or 1 and a decoder is required", s.Filter)
		}
	}
	if o.AckQueue == 0 {
		o.AckQueue = 4096
	}
	if o.DrainTimeout == 0 {
		o.DrainTimeout = 2 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &MQTT{opts: o, subscribed: make(chan struct{})}, nil
}

// Subscribed is closed once the broker has acknowledged the subscriptions
// (the first SUBACK). Before that, messages published to the filters are
// not addressed to edged; from then on the persistent session keeps them
// for edged, across reconnects and restarts.
func (s *MQTT) Subscribed() <-chan struct{} { return s.subscribed }

// MQTTStats are the source's counters.
type MQTTStats struct {
	Messages, Readings, Rejected, Acked uint64
	Connected                           bool
}

// Stats returns the counters.
func (s *MQTT) Stats() MQTTStats {
	return MQTTStats{s.messages.Load(), s.readings.Load(), s.rejected.Load(), s.acked.Load(), s.connected.Load()}
}

type pendingAck struct {
	msg mqtt.Message
	lsn uint64 // 0: nothing appended (rejected), ack at once
}

// Run connects, ingests until ctx ends, acknowledges what became durable
// and disconnects. It returns an error only if the log fails.
func (s *MQTT) Run(ctx context.Context, sink Sink) error {
	acks := make(chan pendingAck, s.opts.AckQueue)
	fatal := make(chan error, 1)
	var stopping atomic.Bool
	var handlerMu sync.Mutex // serialises handlers (paho may call the default one and a subscription's) and guards stopping
	var dst []edged.Reading

	handle := func(_ mqtt.Client, m mqtt.Message) {
		handlerMu.Lock()
		defer handlerMu.Unlock()
		if stopping.Load() {
			return // not acknowledged: the broker redelivers it to the next run
		}
		s.messages.Add(1)
		var lsn uint64
		sub := s.match(m.Topic())
		var err error
		dst = dst[:0]
		if sub == nil {
			err = fmt.Errorf("mqtt: no subscription matches topic %q", m.Topic())
		} else {
			dst, err = sub.Decoder.Decode(dst, m.Topic(), m.Payload(), s.opts.Now().UnixNano())
		}
		if err != nil {
			s.rejected.Add(1)
			if s.opts.Rejects != nil {
				s.opts.Rejects.Reject(m.Topic(), m.Payload(), err)
			}
		}
		if len(dst) > 0 {
			var aerr error
			if lsn, aerr = sink.Append(dst); aerr != nil {
				select {
				case fatal <- fmt.Errorf("mqtt: append to the log: %w", aerr):
				default:
				}
				stopping.Store(true)
				return
			}
			s.readings.Add(uint64(len(dst)))
		}
		select {
		case acks <- pendingAck{m, lsn}:
		case <-ctx.Done():
		}
	}

	stopped := make(chan struct{}) // ends awaitSubAck's wait when Run returns
	defer close(stopped)
	broker := s.opts.Conn.Broker
	// The logger gets failed connection attempts: paho retries them quietly.
	o := s.opts.Conn.ClientOptions(s.opts.Logger).
		SetCleanSession(false).
		SetAutoAckDisabled(true).
		SetOrderMatters(true).
		SetAutoReconnect(true).
		SetConnectRetry(true).
		SetConnectRetryInterval(time.Second).
		SetKeepAlive(30 * time.Second).
		SetDefaultPublishHandler(handle). // messages the session delivers before we subscribe
		SetConnectionLostHandler(func(_ mqtt.Client, err error) {
			s.connected.Store(false)
			s.opts.Logger.Warn("mqtt: connection lost; reconnecting", "broker", broker, "err", err)
		}).
		SetOnConnectHandler(func(c mqtt.Client) {
			s.connected.Store(true)
			filters := map[string]byte{}
			for _, sub := range s.opts.Subscriptions {
				filters[sub.Filter] = sub.QoS
			}
			// No callback: every message goes to the default handler.
			// A subscription's callback is a route, and paho's router
			// splits every message's topic to match routes (an eighth of
			// ingest's garbage at 100 series); handle matches once itself.
			tok := c.SubscribeMultiple(filters, nil)
			go s.awaitSubAck(tok, stopped) // paho forbids waiting on a token inside a callback
			s.opts.Logger.Info("mqtt: connected", "broker", broker, "client_id", s.opts.Conn.ClientID, "subscriptions", len(filters))
		})
	client := mqtt.NewClient(o)
	client.Connect() // with ConnectRetry it keeps trying in the background

	// The acker: acknowledges in receive order as records become durable.
	ackErr := make(chan error, 1)
	ackCtx, stopAcker := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { ackErr <- s.ack(ackCtx, acks, sink) })

	var err error
	select {
	case <-ctx.Done():
	case err = <-fatal:
	case err = <-ackErr:
		ackErr <- err
	}
	// No handler is between its check of stopping and its send on acks
	// once we hold the lock (a handler blocked on a full queue is released by
	// ctx or by the acker draining the queue).
	handlerMu.Lock()
	stopping.Store(true)
	handlerMu.Unlock()
	// Give records already appended the drain timeout to become durable and
	// be acknowledged; the rest are redelivered by the broker next time.
	drain := time.AfterFunc(s.opts.DrainTimeout, stopAcker)
	close(acks)
	wg.Wait()
	drain.Stop()
	stopAcker()
	if aerr := <-ackErr; err == nil && aerr != nil && !errors.Is(aerr, context.Canceled) {
		err = aerr
	}
	client.Disconnect(250)
	s.connected.Store(false)
	return err
}

// awaitSubAck waits for the broker's answer to a SUBSCRIBE. A lost
// connection completes the token with an error; the next connect
// subscribes again.
func (s *MQTT) awaitSubAck(tok mqtt.Token, stopped <-chan struct{}) {
	select {
	case <-tok.Done():
	case <-stopped:
		return
	}
	if err := tok.Error(); err != nil {
		s.opts.Logger.Error("mqtt: subscribe failed", "broker", s.opts.Conn.Broker, "err", err)
		return
	}
	if st, ok := tok.(*mqtt.SubscribeToken); ok {
		for filter, code := range st.Result() {
			if code == 0x80 { // SUBACK failure: an ACL, say
				s.opts.Logger.Error("mqtt: the broker refused the subscription; check its ACL", "broker", s.opts.Conn.Broker, "topic", filter)
			}
		}
	}
	s.subscribeOnce.Do(func() {
		close(s.subscribed)
		s.opts.Logger.Info("mqtt: subscriptions acknowledged", "broker", s.opts.Conn.Broker)
	})
}

func (s *MQTT) ack(ctx context.Context, acks <-chan pendingAck, sink Sink) error {
	for p := range acks {
		if p.lsn > 0 {
			if err := sink.WaitDurable(ctx, p.lsn); err != nil {
				// Drain the queue without acknowledging: those messages are
				// redelivered after a restart.
				for range acks {
				}
				if ctx.Err() != nil {
					return ctx.Err()
				}
				return fmt.Errorf("mqtt: waiting for the log: %w", err)
			}
		}
		p.msg.Ack()
		s.acked.Add(1)
	}
	return nil
}

func (s *MQTT) match(topic string) *MQTTSubscription {
	for i := range s.opts.Subscriptions {
		if MatchTopic(s.opts.Subscriptions[i].Filter, topic) {
			return &s.opts.Subscriptions[i]
		}
	}
	return nil
}

// MatchTopic reports whether an MQTT topic filter matches a topic name.
// It runs on every message, so it walks both level by level without
// splitting them.
func MatchTopic(filter, topic string) bool {
	if strings.HasPrefix(topic, "$") && !strings.HasPrefix(filter, "$") {
		return false // $SYS and friends only match filters that name them
	}
	for {
		f, frest, fmore := strings.Cut(filter, "/")
		if f == "#" {
			return true
		}
		t, trest, tmore := strings.Cut(topic, "/")
		if f != "+" && f != t {
			return false
		}
		switch {
		case !fmore:
			return !tmore
		case !tmore:
			return frest == "#" // "a/#" matches "a"; nothing else matches a shorter topic
		}
		filter, topic = frest, trest
	}
}

func validFilter(f string) error {
	if f == "" {
		return errors.New("mqtt: empty topic filter")
	}
	parts := strings.Split(f, "/")
	for i, p := range parts {
		if (strings.Contains(p, "#") && (p != "#" || i != len(parts)-1)) || (strings.Contains(p, "+") && p != "+") {
			return fmt.Errorf("mqtt: bad topic filter %q: + must be a whole level and # the last level", f)
		}
	}
	return nil
}
