package notify

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/edged-io/edged/alerts/hass"
	"github.com/edged-io/edged/internal/mqttconn"
)

const (
	// window is how many publications are in flight at once.
	window = 32
	// saveEvery bounds the events delivered between two saves of the mark
	// while the queue does not drain.
	saveEvery = 256
	// ackTimeout bounds the wait for one PUBACK (or SUBACK) on a live
	// connection; past it the connection is dropped and made again.
	ackTimeout = 30 * time.Second
	// connectTimeout bounds one connection attempt, and so a stop that
	// arrives during one.
	connectTimeout = 5 * time.Second
	// goodbyeTimeout bounds the publication of "offline" on a stop.
	goodbyeTimeout = 2 * time.Second
	// minBackoff is the first reconnect delay; stableAfter is how long a
	// connection must have lasted for the backoff to start over.
	minBackoff  = 250 * time.Millisecond
	stableAfter = 10 * time.Second
)

var (
	errLost       = errors.New("connection lost")
	errAckTimeout = errors.New("no acknowledgement from the broker")
)

// Run connects to the broker, reconnecting with backoff, and delivers
// until ctx is cancelled or Close is called; then it drains the queue for
// up to Options.DrainTimeout, publishes "offline", disconnects and saves
// the delivered mark. It returns once every goroutine it started has
// stopped; the error is only that of the final save.
func (p *Publisher) Run(ctx context.Context) error {
	p.mu.Lock()
	if p.ran {
		p.mu.Unlock()
		return ErrRunning
	}
	p.ran = true
	defer close(p.done)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	p.cancel = cancel
	if p.closed {
		cancel()
	}
	p.mu.Unlock()

	// abort ends the drain: DrainTimeout after ctx, or when Run returns.
	abort, stopAbort := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	defer wg.Wait()
	defer stopAbort()
	wg.Go(func() {
		select {
		case <-ctx.Done():
		case <-abort.Done():
			return
		}
		t := time.NewTimer(p.o.DrainTimeout)
		defer t.Stop()
		select {
		case <-t.C:
			stopAbort()
		case <-abort.Done():
		}
	})

	p.loop(ctx, abort)
	return p.save()
}

// loop makes connections and serves them until ctx ends.
func (p *Publisher) loop(ctx, abort context.Context) {
	log := p.o.Logger
	delay, failures := minBackoff, 0
	for ctx.Err() == nil {
		var why error // why the connection was lost
		c, lost, err := p.connect(&why)
		if err != nil {
			if failures++; failures == 1 {
				if hint := mqttconn.Hint(err); hint != "" {
					log.Error("alert delivery: cannot connect to the broker; retrying", "broker", p.o.Conn.Broker, "err", err, "hint", hint)
				} else {
					log.Warn("alert delivery: cannot connect to the broker; retrying", "broker", p.o.Conn.Broker, "err", err)
				}
			} else {
				log.Debug("alert delivery: connection attempt failed", "broker", p.o.Conn.Broker, "attempt", failures, "err", err)
			}
			p.sleep(ctx, &delay)
			continue
		}
		failures = 0
		p.connected.Store(true)
		log.Info("alert delivery: connected", "broker", p.o.Conn.Broker, "client_id", p.o.Conn.ClientID)
		start := time.Now()
		err = p.session(ctx, abort, c, lost)
		if ctx.Err() != nil {
			p.goodbye(c, lost)
			p.connected.Store(false)
			return
		}
		c.Disconnect(0) // after a loss a no-op; after a failure it drops the connection
		p.connected.Store(false)
		if errors.Is(err, errLost) && why != nil {
			err = fmt.Errorf("%w: %w", err, why)
		}
		log.Warn("alert delivery: connection failed; reconnecting", "broker", p.o.Conn.Broker, "err", err, "queued", p.Stats().Queued)
		if time.Since(start) >= stableAfter {
			delay = minBackoff
		}
		p.sleep(ctx, &delay)
	}
}

// sleep waits for *delay (with jitter) or ctx, then doubles *delay up to
// the maximum.
func (p *Publisher) sleep(ctx context.Context, delay *time.Duration) {
	d := *delay + rand.N(*delay/4+1)
	*delay = min(2*(*delay), max(p.o.Conn.MaxReconnectInterval, minBackoff))
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// connect makes one connection attempt with a fresh client. lost is
// closed when the connection dies, after *why is set.
func (p *Publisher) connect(why *error) (c mqtt.Client, lost <-chan struct{}, err error) {
	lostc := make(chan struct{})
	var once sync.Once
	// No logger: loop reports every attempt's error itself.
	o := p.o.Conn.ClientOptions(nil).
		SetCleanSession(false).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetConnectTimeout(connectTimeout).
		SetWriteTimeout(ackTimeout).
		SetKeepAlive(30*time.Second).
		SetWill(p.status, hass.PayloadOffline, 1, true).
		SetDefaultPublishHandler(p.onMessage). // what the session delivers before we subscribe
		SetConnectionLostHandler(func(_ mqtt.Client, err error) {
			once.Do(func() { *why = err; close(lostc) })
		})
	c = mqtt.NewClient(o)
	tok := c.Connect()
	<-tok.Done() // bounded by connectTimeout
	if err := tok.Error(); err != nil {
		return nil, nil, err
	}
	return c, lostc, nil
}

// session announces the device online, subscribes to Home Assistant's
// status, and serves the connection until it fails or ctx ends.
func (p *Publisher) session(ctx, abort context.Context, c mqtt.Client, lost <-chan struct{}) error {
	if err := await(abort, lost, c.Publish(p.status, 1, true, hass.PayloadOnline)); err != nil {
		return fmt.Errorf("publishing online: %w", err)
	}
	if p.o.Discovery.Enabled {
		topic := p.o.Discovery.StatusTopic
		tok := c.Subscribe(topic, 1, p.onMessage)
		err := await(abort, lost, tok)
		if errors.Is(err, errLost) || errors.Is(err, errAckTimeout) || abort.Err() != nil {
			return fmt.Errorf("subscribing to %s: %w", topic, err)
		}
		if st, ok := tok.(*mqtt.SubscribeToken); ok && err == nil && st.Result()[topic] == 0x80 {
			err = errors.New("refused by the broker")
		}
		if err != nil { // not fatal: discovery still works, without re-announcements
			p.o.Logger.Error("alert delivery: cannot subscribe to the Home Assistant status topic", "topic", topic, "err", err)
		}
		p.republish()
	}
	return p.serve(ctx, abort, c, lost)
}

// serve publishes pending discovery configs, then queued events in order,
// each batch once the previous one is acknowledged. Configs go first, so
// that Home Assistant knows an entity before its state arrives. Once ctx
// has ended it returns when the queue is empty.
func (p *Publisher) serve(ctx, abort context.Context, c mqtt.Client, lost <-chan struct{}) error {
	for {
		p.mu.Lock()
		topics, payloads := p.pendingConfigs()
		var batch []entry
		if len(topics) == 0 {
			batch = p.q.take(window)
		}
		p.mu.Unlock()
		switch {
		case len(topics) > 0:
			if err := p.sendConfigs(abort, c, lost, topics, payloads); err != nil {
				return err
			}
			continue
		case len(batch) == 0:
			p.checkpoint()
			if ctx.Err() != nil {
				return nil
			}
			select {
			case <-p.wake:
			case <-lost:
				return errLost
			case <-ctx.Done():
			}
			continue
		}
		toks := make([]mqtt.Token, len(batch))
		for i := range batch {
			e := &batch[i]
			toks[i] = c.Publish(e.topic, 1, true, encode(&e.ev, e.ev.Device))
		}
		n := 0
		var err error
		for ; n < len(toks); n++ {
			if err = await(abort, lost, toks[n]); err != nil {
				break
			}
		}
		p.settle(batch, n)
		if err != nil {
			return err
		}
	}
}

// settle removes the first n events of batch from the queue (delivered),
// advances the mark and returns the rest to the queue for a retry.
func (p *Publisher) settle(batch []entry, n int) {
	p.mu.Lock()
	p.q.pop(n)
	for _, e := range batch[:n] {
		p.delivered = p.delivered.advance(e.ev.LSN, e.ev.Seq)
	}
	p.unsaved += n
	save := p.unsaved >= saveEvery
	ended := p.episode && p.q.len() <= p.o.QueueLimit/2
	if ended {
		p.episode = false
	}
	p.mu.Unlock()
	p.nDelivered.Add(uint64(n))
	p.nRetries.Add(uint64(len(batch) - n))
	if ended {
		p.o.Logger.Info("alert delivery caught up: queue no longer full", "coalesced_total", p.nCoalesced.Load())
	}
	if save {
		p.checkpoint()
	}
}

// pendingConfigs returns up to a window of the configs marked pending and
// clears their marks. p.mu must be held.
func (p *Publisher) pendingConfigs() (topics []string, payloads [][]byte) {
	for _, t := range p.order {
		if len(topics) == window {
			break
		}
		if cfg := p.configs[t]; cfg.pending {
			cfg.pending = false
			topics, payloads = append(topics, t), append(payloads, cfg.payload)
		}
	}
	return topics, payloads
}

// sendConfigs publishes discovery configs; those not acknowledged are
// marked pending again.
func (p *Publisher) sendConfigs(abort context.Context, c mqtt.Client, lost <-chan struct{}, topics []string, payloads [][]byte) error {
	toks := make([]mqtt.Token, len(topics))
	for i := range topics {
		toks[i] = c.Publish(topics[i], 1, true, payloads[i])
	}
	for i, tok := range toks {
		if err := await(abort, lost, tok); err != nil {
			p.mu.Lock()
			for _, t := range topics[i:] {
				p.configs[t].pending = true
			}
			p.mu.Unlock()
			return fmt.Errorf("publishing discovery config %s: %w", topics[i], err)
		}
		p.nAnnounced.Add(1)
	}
	return nil
}

// goodbye publishes "offline" and disconnects cleanly (the broker then
// does not publish the will).
func (p *Publisher) goodbye(c mqtt.Client, lost <-chan struct{}) {
	ctx, cancel := context.WithTimeout(context.Background(), goodbyeTimeout)
	defer cancel()
	if err := await(ctx, lost, c.Publish(p.status, 1, true, hass.PayloadOffline)); err != nil {
		p.o.Logger.Warn("alert delivery: could not publish offline; the broker will when it notices", "err", err)
	}
	c.Disconnect(250)
}

// onMessage handles Home Assistant's status: "online" means it (re)started
// and needs the discovery configs again. A retained "online" arrives on
// every subscription, right after the configs were published anyway.
func (p *Publisher) onMessage(_ mqtt.Client, m mqtt.Message) {
	if !p.o.Discovery.Enabled || m.Topic() != p.o.Discovery.StatusTopic || m.Retained() {
		return
	}
	if strings.TrimSpace(string(m.Payload())) == "online" {
		p.o.Logger.Info("alert delivery: Home Assistant is online; publishing discovery configs again")
		p.republish()
	}
}

// checkpoint saves the mark while running; a failure is logged once per
// streak, as it only means that replayed events may be announced again.
func (p *Publisher) checkpoint() {
	err := p.save()
	if err != nil && !p.saveFailing {
		p.o.Logger.Error("alert delivery: replayed alerts may be announced again after a restart", "err", err)
	}
	p.saveFailing = err != nil
}

// save writes the delivered mark to StateDir if it moved.
func (p *Publisher) save() error {
	p.mu.Lock()
	m, changed := p.delivered, p.delivered != p.saved
	p.mu.Unlock()
	if !changed || p.o.StateDir == "" {
		return nil
	}
	if err := saveMark(p.o.StateDir, m); err != nil {
		return err
	}
	p.mu.Lock()
	p.saved, p.unsaved = m, 0
	p.mu.Unlock()
	return nil
}

// await waits for the broker's acknowledgement of tok.
func await(ctx context.Context, lost <-chan struct{}, tok mqtt.Token) (err error) {
	t := time.NewTimer(ackTimeout)
	defer t.Stop()
	select {
	case <-tok.Done():
		return tok.Error()
	case <-lost:
		err = errLost
	case <-ctx.Done():
		err = ctx.Err()
	case <-t.C:
		err = errAckTimeout
	}
	select { // an acknowledgement that raced with the failure still counts
	case <-tok.Done():
		return tok.Error()
	default:
		return err
	}
}
