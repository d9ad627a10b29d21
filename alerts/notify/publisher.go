package notify

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"sync/atomic"

	"github.com/edged-io/edged/alerts/hass"
)

// ErrRunning is returned by a second call of Run.
var ErrRunning = errors.New("notify: Run called more than once")

// Publisher delivers alert events and discovery configs to an MQTT broker.
// Publish, AnnounceSeries, AnnounceAlert, Stats, Delivered and Close are
// safe for concurrent use; Run is called once.
type Publisher struct {
	o      Options
	status string // <prefix>/<device>/status

	wake chan struct{} // capacity 1: work arrived
	done chan struct{} // closed when Run has returned

	mu        sync.Mutex
	q         queue
	delivered mark // highest event the broker acknowledged
	saved     mark // what StateDir holds
	unsaved   int  // events delivered since the last save
	episode   bool // coalescing since the queue was last at most half full
	configs   map[string]*config
	order     []string        // config topics in announcement order
	alerts    map[string]bool // alert state topics announced
	ran       bool
	closed    bool
	cancel    context.CancelFunc // Run's; nil until Run

	saveFailing bool // Run's goroutine only

	nDelivered, nRetries, nCoalesced, nSkipped, nAnnounced atomic.Uint64
	connected                                              atomic.Bool
}

// config is one remembered discovery config.
type config struct {
	payload []byte
	pending bool // to be published on the current connection
}

// New checks the options and loads the delivered mark from StateDir. It
// starts nothing; Run connects.
func New(o Options) (*Publisher, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	o = o.withDefaults()
	m, err := loadMark(o.StateDir)
	if err != nil {
		return nil, err
	}
	return &Publisher{
		o:         o,
		status:    hass.StatusTopic(o.Prefix, o.Device),
		wake:      make(chan struct{}, 1),
		done:      make(chan struct{}),
		q:         queue{limit: o.QueueLimit},
		delivered: m,
		saved:     m,
		configs:   map[string]*config{},
		alerts:    map[string]bool{},
	}, nil
}

// Publish queues an event for delivery and returns at once. An event at or
// before the delivered mark (LSN, Seq) was delivered before, by this
// process or one before a restart, and is skipped.
func (p *Publisher) Publish(e Event) {
	device := e.Device
	if device == "" {
		device = p.o.Device
	}
	topic := hass.AlertTopic(p.o.Prefix, device, e.Rule, e.Series)
	p.mu.Lock()
	if p.delivered.covers(e.LSN, e.Seq) {
		p.mu.Unlock()
		p.nSkipped.Add(1)
		return
	}
	e.Device = device
	n := p.q.push(entry{topic, e})
	first := n > 0 && !p.episode
	p.episode = p.episode || n > 0
	queued := p.q.len()
	if p.o.Discovery.Enabled && !p.alerts[topic] {
		p.alerts[topic] = true
		p.remember(hass.Alert(p.o.Discovery.Device, p.o.Prefix, p.o.Discovery.Prefix,
			hass.AlertInfo{Device: device, Rule: e.Rule, Series: e.Series}))
	}
	p.mu.Unlock()
	if n > 0 {
		p.nCoalesced.Add(uint64(n))
	}
	if first {
		p.o.Logger.Warn("alert delivery is behind: queue full, keeping only the latest event per alert until it drains",
			"limit", p.o.QueueLimit, "queued", queued, "broker", p.o.Conn.Broker)
	}
	p.signal()
}

// AnnounceSeries publishes (now or on connection) the discovery config of
// a series' sensor and remembers it. Series and StateTopic are required.
// It does nothing when discovery is disabled.
func (p *Publisher) AnnounceSeries(s hass.SeriesInfo) error {
	if s.Series == "" || s.StateTopic == "" {
		return errors.New("notify: announcing a series needs its name and state topic")
	}
	if !p.o.Discovery.Enabled {
		return nil
	}
	p.announce(hass.Sensor(p.o.Discovery.Device, p.o.Prefix, p.o.Discovery.Prefix, s))
	return nil
}

// AnnounceAlert publishes (now or on connection) the discovery config of
// an alert instance's problem binary_sensor and remembers it. Rule and
// Series are required. It does nothing when discovery is disabled.
func (p *Publisher) AnnounceAlert(a hass.AlertInfo) error {
	if a.Rule == "" || a.Series == "" {
		return errors.New("notify: announcing an alert needs its rule and series")
	}
	if !p.o.Discovery.Enabled {
		return nil
	}
	if a.Device == "" {
		a.Device = p.o.Device
	}
	m := hass.Alert(p.o.Discovery.Device, p.o.Prefix, p.o.Discovery.Prefix, a)
	p.mu.Lock()
	p.alerts[hass.AlertTopic(p.o.Prefix, a.Device, a.Rule, a.Series)] = true
	p.mu.Unlock()
	p.announce(m)
	return nil
}

func (p *Publisher) announce(m hass.Message) {
	p.mu.Lock()
	changed := p.remember(m)
	p.mu.Unlock()
	if changed {
		p.signal()
	}
}

// remember stores a discovery config and marks it for publication unless
// it is known with the same payload. p.mu must be held.
func (p *Publisher) remember(m hass.Message) bool {
	c, ok := p.configs[m.Topic]
	if ok && bytes.Equal(c.payload, m.Payload) {
		return false
	}
	if !ok {
		c = &config{}
		p.configs[m.Topic] = c
		p.order = append(p.order, m.Topic)
	}
	c.payload, c.pending = m.Payload, true
	return true
}

// republish marks every remembered config for publication.
func (p *Publisher) republish() {
	p.mu.Lock()
	for _, c := range p.configs {
		c.pending = true
	}
	n := len(p.configs)
	p.mu.Unlock()
	if n > 0 {
		p.signal()
	}
}

func (p *Publisher) signal() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// Delivered returns the latest event the broker acknowledged, (0, 0) if
// none. It may be ahead of the mark saved in StateDir.
func (p *Publisher) Delivered() (lsn uint64, seq uint32) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.delivered.LSN, p.delivered.Seq
}

// Stats are the publisher's counters.
type Stats struct {
	// Queued events wait for the broker's acknowledgement.
	Queued int `json:"queued"`
	// Delivered events were acknowledged by the broker.
	Delivered uint64 `json:"delivered"`
	// Retries counts events sent again after a connection failure.
	Retries uint64 `json:"retries"`
	// Coalesced events were superseded in a full queue by a later event
	// for the same alert topic and never sent.
	Coalesced uint64 `json:"coalesced"`
	// Skipped events were at or before the delivered mark (replayed).
	Skipped uint64 `json:"skipped"`
	// Connected reports an established broker connection.
	Connected bool `json:"connected"`
	// Announcements counts discovery configs the broker acknowledged,
	// re-publications included; Entities is how many are remembered.
	Announcements uint64 `json:"announcements"`
	Entities      int    `json:"entities"`
}

// Stats returns the counters.
func (p *Publisher) Stats() Stats {
	p.mu.Lock()
	queued, entities := p.q.len(), len(p.configs)
	p.mu.Unlock()
	return Stats{
		Queued: queued, Delivered: p.nDelivered.Load(), Retries: p.nRetries.Load(),
		Coalesced: p.nCoalesced.Load(), Skipped: p.nSkipped.Load(), Connected: p.connected.Load(),
		Announcements: p.nAnnounced.Load(), Entities: entities,
	}
}

// Close stops Run, as cancelling its context does, and waits until it has
// returned. It is idempotent; after it, Run returns at once.
func (p *Publisher) Close() error {
	p.mu.Lock()
	p.closed = true
	cancel, ran := p.cancel, p.ran
	p.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	if ran {
		<-p.done
	}
	return nil
}
