package reliability

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// Subscription is the mqtt.subscriptions entry that decodes Load's
// messages: topic rel/s<i>, series s<i>/value, event time from ts.
const Subscription = `- topic: rel/+
  format: json
  series: "{2}/{field}"
  fields: [{path: value}]
  time: {path: ts, format: unix_ms}`

// Load is a deterministic dataset: Sensors series; reading seq of sensor
// i has event time T0 + seq·Period and a value derived from (i, seq), so
// its identity (device, series, event time) is the same however often it
// is published. Values are multiples of ¼ in [−50, 150): every sum of
// them is exact in float64, whatever the order. A run publishes readings
// 0 … n−1 of every sensor, then a sentinel per sensor 15 s of event time
// after the last, which closes every data window.
type Load struct {
	Sensors int
	// T0 is the first event time, Unix ms, a multiple of 10 s.
	T0 int64
	// Period between a sensor's readings, ms.
	Period int64
}

// NewLoad returns a load whose event times start ago before now, aligned
// to 10 s.
func NewLoad(sensors int, period time.Duration, ago time.Duration) Load {
	t0 := time.Now().Add(-ago).UnixMilli()
	return Load{Sensors: sensors, T0: t0 - t0%10_000, Period: period.Milliseconds()}
}

// Series is sensor i's series name.
func (l Load) Series(i int) string { return fmt.Sprintf("s%d/value", i) }

// Topic is sensor i's MQTT topic.
func (l Load) Topic(i int) string { return fmt.Sprintf("rel/s%d", i) }

// Time is the event time (ms) of reading seq.
func (l Load) Time(seq int) int64 { return l.T0 + int64(seq)*l.Period }

// SentinelTime is the sentinels' event time after n readings.
func (l Load) SentinelTime(n int) int64 { return l.Time(n-1) + 15_000 }

// Value of reading seq of sensor i.
func (l Load) Value(i, seq int) float64 {
	x := uint64(i)*1_000_003 + uint64(seq)*7919
	return float64(int64(x%800)-200) / 4
}

// Payload is the JSON message of reading seq of sensor i.
func (l Load) Payload(i, seq int) []byte {
	return fmt.Appendf(nil, `{"seq":%d,"ts":%d,"value":%g}`, seq, l.Time(seq), l.Value(i, seq))
}

// Agg is a window's exact aggregates.
type Agg struct {
	Count         int
	Sum, Min, Max float64
}

// Expected returns the exact aggregates of every data window of the given
// size after n readings per sensor, per series and window start (ms): what
// a run without any fault produces. Sentinel windows stay open and are not
// included.
func (l Load) Expected(n int, size time.Duration) map[string]map[int64]Agg {
	out := map[string]map[int64]Agg{}
	ms := size.Milliseconds()
	for i := range l.Sensors {
		m := map[int64]Agg{}
		for seq := range n {
			ts := l.Time(seq)
			start := ts - ts%ms
			a, ok := m[start]
			v := l.Value(i, seq)
			if !ok {
				a = Agg{Min: v, Max: v}
			}
			a.Count++
			a.Sum += v
			a.Min, a.Max = math.Min(a.Min, v), math.Max(a.Max, v)
			m[start] = a
		}
		out[l.Series(i)] = m
	}
	return out
}

// Publisher publishes a Load with QoS 1 and records which readings the
// broker accepted (PUBACK). A publish that fails or is not acknowledged
// within RetryAfter is sent again, as a device with its own buffer would:
// the identity is stable, so a second copy is a duplicate downstream, never
// a new reading.
type Publisher struct {
	Load   Load
	client mqtt.Client

	mu       sync.Mutex
	accepted map[[2]int]bool // {sensor, seq}; seq −n−1 is the sentinel after n

	published, acceptedN, republished atomic.Int64
	pending                           chan pendingPub
	done                              chan struct{}
	lastErr                           atomic.Value // string: why the last re-send was needed
	paused                            atomic.Bool
	inflight                          atomic.Int64 // readings sent and not yet accepted
	wg                                sync.WaitGroup
}

type pendingPub struct {
	sensor, seq int
	tok         mqtt.Token
	sent        time.Time
}

// RetryAfter is how long a publish may wait for its PUBACK before it is
// sent again.
const RetryAfter = 5 * time.Second

// NewPublisher connects a publisher to the broker URL. Its session is
// persistent: after a reconnect paho re-sends the QoS 1 messages still
// unacknowledged and completes their tokens (with a clean session it
// would leave them pending for ever and run out of message ids).
func NewPublisher(url string, load Load) (*Publisher, error) {
	opts := mqtt.NewClientOptions().AddBroker(url).SetClientID(fmt.Sprintf("rel-pub-%d", rand.Int64())).
		SetCleanSession(false).SetAutoReconnect(true).SetConnectRetry(true).SetConnectRetryInterval(200 * time.Millisecond).
		SetMaxReconnectInterval(500 * time.Millisecond).SetWriteTimeout(2 * time.Second).SetKeepAlive(5 * time.Second)
	c := mqtt.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		return nil, fmt.Errorf("publisher: connect %s: %v", url, tok.Error())
	}
	p := &Publisher{Load: load, client: c, pending: make(chan pendingPub, 4096), done: make(chan struct{})}
	p.accepted = map[[2]int]bool{}
	p.wg.Go(p.confirm)
	return p, nil
}

// payload is the message of reading seq, or of the sentinel after n
// readings for seq = −n−1.
func (p *Publisher) payload(sensor, seq int) []byte {
	if seq < 0 {
		n := -seq - 1
		return fmt.Appendf(nil, `{"seq":%d,"ts":%d,"value":0}`, n, p.Load.SentinelTime(n))
	}
	return p.Load.Payload(sensor, seq)
}

func (p *Publisher) send(sensor, seq int) {
	p.inflight.Add(1)
	tok := p.client.Publish(p.Load.Topic(sensor), 1, false, p.payload(sensor, seq))
	select {
	case p.pending <- pendingPub{sensor, seq, tok, time.Now()}:
	case <-p.done:
	}
}

// confirm records PUBACKs in publish order and re-sends what failed.
func (p *Publisher) confirm() {
	for {
		var pp pendingPub
		select {
		case pp = <-p.pending:
		case <-p.done:
			return
		}
		timer := time.NewTimer(time.Until(pp.sent.Add(RetryAfter)))
		select {
		case <-pp.tok.Done():
		case <-timer.C:
		case <-p.done:
			timer.Stop()
			return
		}
		timer.Stop()
		if done(pp.tok) && pp.tok.Error() == nil {
			p.mu.Lock()
			if k := [2]int{pp.sensor, pp.seq}; !p.accepted[k] {
				p.accepted[k] = true
				p.acceptedN.Add(1)
			}
			p.mu.Unlock()
			p.inflight.Add(-1)
			continue
		}
		if e := pp.tok.Error(); e != nil {
			p.lastErr.Store(e.Error())
		} else {
			p.lastErr.Store("timeout")
		}
		// Not accepted: the broker is down or unreachable; send again once
		// the client is back.
		for !p.client.IsConnectionOpen() {
			select {
			case <-p.done:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
		p.republished.Add(1)
		tok := p.client.Publish(p.Load.Topic(pp.sensor), 1, false, p.payload(pp.sensor, pp.seq))
		again := pendingPub{pp.sensor, pp.seq, tok, time.Now()}
		select {
		case p.pending <- again:
		default:
			// The queue is full of newer publishes: this one waits for a
			// place (it is confirmed later; nothing depends on the order).
			p.wg.Go(func() {
				select {
				case p.pending <- again:
				case <-p.done:
				}
			})
		}
	}
}

func done(tok mqtt.Token) bool {
	select {
	case <-tok.Done():
		return true
	default:
		return false
	}
}

// Publish sends readings from, from+1, … of every sensor, seq-major
// (event time never decreases within a series), at about rate messages
// per second, until to or until ctx ends, always finishing the round of
// the current seq. Between messages it calls hook(n) with the count sent
// so far (nil: none). It returns the next seq: every sensor has readings
// [from, next) sent (not necessarily accepted: see WaitAccepted).
func (p *Publisher) Publish(ctx context.Context, from, to int, rate int, hook func(n int)) int {
	const tick = 10 * time.Millisecond
	perTick := max(1, rate/int(time.Second/tick))
	next := time.Now()
	n := 0
	seq := from
	for ; seq < to && ctx.Err() == nil; seq++ {
		for p.paused.Load() && ctx.Err() == nil {
			time.Sleep(10 * time.Millisecond)
			next = time.Now()
		}
		for i := range p.Load.Sensors {
			p.send(i, seq)
			p.published.Add(1)
			n++
			if hook != nil {
				hook(n)
			}
			if n%perTick == 0 {
				next = next.Add(tick)
				if d := time.Until(next); d > 0 {
					time.Sleep(d)
				} else if d < -time.Second {
					next = time.Now() // do not burst to catch up after a stall
				}
			}
		}
	}
	return seq
}

// Pause holds Publish before its next round until Resume, and waits until
// the broker accepted everything sent so far (or timeout passes).
func (p *Publisher) Pause(timeout time.Duration) error {
	p.paused.Store(true)
	time.Sleep(50 * time.Millisecond) // the current round finishes
	return waitFor(timeout, func() bool { return len(p.pending) == 0 && p.inflight.Load() == 0 })
}

// Resume lets Publish go on.
func (p *Publisher) Resume() { p.paused.Store(false) }

// Finish sends the sentinels after n readings (PublishSentinels) and
// waits up to within for the broker to have accepted every reading and
// sentinel (WaitAccepted).
func (p *Publisher) Finish(n int, within time.Duration) error {
	p.PublishSentinels(n)
	return p.WaitAccepted(n, true, within)
}

// PublishSentinels sends the sentinel of every sensor after n readings.
func (p *Publisher) PublishSentinels(n int) {
	for i := range p.Load.Sensors {
		p.send(i, -n-1)
		p.published.Add(1)
	}
}

// WaitAccepted waits until every reading in [0, n) of every sensor (and
// the sentinels after n when sentinels is true) was accepted by the broker.
func (p *Publisher) WaitAccepted(n int, sentinels bool, timeout time.Duration) error {
	var missing [][2]int
	err := waitFor(timeout, func() bool {
		missing = p.missing(n, sentinels)
		return len(missing) == 0
	})
	if err != nil {
		pub, acc, re := p.Counts()
		return fmt.Errorf("%d readings not accepted by the broker after %v (e.g. {sensor, seq} %v; %d published, %d accepted, %d re-sent)",
			len(missing), timeout, missing[:min(5, len(missing))], pub, acc, re)
	}
	return nil
}

func (p *Publisher) missing(n int, sentinels bool) [][2]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out [][2]int
	for i := range p.Load.Sensors {
		for seq := range n {
			if !p.accepted[[2]int{i, seq}] {
				out = append(out, [2]int{i, seq})
			}
		}
		if sentinels && !p.accepted[[2]int{i, -n - 1}] {
			out = append(out, [2]int{i, -n - 1})
		}
	}
	return out
}

// Accepted returns the readings the broker accepted, by identity (the
// sentinels after n included).
func (p *Publisher) Accepted(n int) map[Identity]Point {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[Identity]Point{}
	for k := range p.accepted {
		i, seq := k[0], k[1]
		if seq < 0 {
			if -seq-1 == n {
				out[Identity{p.Load.Series(i), p.Load.SentinelTime(n)}] = Point{Copies: 1}
			}
			continue
		}
		out[Identity{p.Load.Series(i), p.Load.Time(seq)}] = Point{Value: p.Load.Value(i, seq), Copies: 1}
	}
	return out
}

// Counts: messages published (first sends), distinct readings accepted,
// and re-sends.
func (p *Publisher) Counts() (published, accepted, republished int64) {
	return p.published.Load(), p.acceptedN.Load(), p.republished.Load()
}

// Close disconnects. Publishes still pending are abandoned.
func (p *Publisher) Close() {
	close(p.done)
	p.wg.Wait()
	p.client.Disconnect(250)
}

// PublishInBackground runs Publish(ctx, 0, ∞, rate, nil) in its own
// goroutine. The returned stop ends it (cancelling ctx's child) and
// returns what Publish returned; it may be called more than once (say,
// deferred as well).
func (p *Publisher) PublishInBackground(ctx context.Context, rate int) (stop func() int) {
	ctx, cancel := context.WithCancel(ctx)
	var n int
	done := make(chan struct{})
	go func() {
		defer close(done)
		n = p.Publish(ctx, 0, math.MaxInt32, rate, nil)
	}()
	return sync.OnceValue(func() int {
		cancel()
		<-done
		return n
	})
}
