package alerts

import (
	"cmp"
	"maps"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/edged-io/edged"
	"github.com/edged-io/edged/aggregate"
)

// Options configure an Engine. The zero value gives the defaults.
type Options struct {
	// ClockStep: a jump of processing time larger than this between two
	// consecutive inputs, forward or back, is taken as the clock being set
	// (NTP synchronising a Raspberry Pi that has no RTC) or the daemon
	// having been down, not as time passing: for, absent and renotify
	// timers do not advance across it. Default 1m; negative counts every
	// forward step, however large.
	ClockStep time.Duration
}

// DefaultClockStep is the default of Options.ClockStep.
const DefaultClockStep = time.Minute

// The states of an alert instance, as Event.State and Alert.State spell
// them. An instance starts inactive; resolved behaves as inactive for the
// next cycle.
const (
	StateInactive = "inactive"
	StatePending  = "pending"
	StateFiring   = "firing"
	StateResolved = "resolved"
)

type state uint8

const (
	inactive state = iota
	pending
	firing
	resolved
)

var stateNames = [...]string{StateInactive, StatePending, StateFiring, StateResolved}

// Event is one state change of an alert instance, or a repeated firing
// notification (Renotify).
type Event struct {
	Rule, Device, Series string
	// State is one of StatePending, StateFiring, StateResolved and
	// StateInactive.
	State string
	// Value caused the transition: the reading's or window's value, the
	// rate for rate rules, the seconds of silence for absence rules (for
	// renotifications, the latest such value).
	Value float64
	// Threshold is the one crossed: the fire threshold for pending,
	// firing and inactive, the clear threshold for resolved (for absence
	// rules, the absent duration in seconds).
	Threshold float64
	Severity  string
	// Labels are the rule's; shared, not to be modified.
	Labels map[string]string
	// Started is the processing time (ns) at which the cycle began
	// (pending, or firing without for); Resolved when it resolved, else 0.
	Started, Resolved int64
	// ID is the same for every event of one cycle, inactive → … →
	// resolved or back to inactive, and differs between cycles.
	ID string
	// Renotify marks a repeated notification of a still-firing alert.
	Renotify bool
	// LSN is the input record's; Seq numbers the events emitted for that
	// LSN from 0. (LSN, Seq) is a strict total order of all events.
	LSN uint64
	Seq uint32
}

// Alert is the current state of an instance that is not inactive.
type Alert struct {
	Rule   string `json:"rule"`
	Device string `json:"device"`
	Series string `json:"series"`
	// State is StatePending, StateFiring or StateResolved.
	State string `json:"state"`
	// Value caused the latest transition; Threshold as in Event.
	Value     float64 `json:"value"`
	Threshold float64 `json:"threshold"`
	// Started as in Event; Since is when the current state was entered
	// (ns since the epoch, processing time).
	Started  int64             `json:"started"`
	Since    int64             `json:"since"`
	ID       string            `json:"event_id"`
	Severity string            `json:"severity"`
	Labels   map[string]string `json:"labels,omitempty"`
}

// Engine evaluates rules on a stream of readings, windows and ticks. The
// input methods and checkpointing must be called from one goroutine;
// Alerts and Counts may be called from any.
type Engine struct {
	rules []rule
	step  int64 // Options.ClockStep in ns, negative: none
	hash  [32]byte

	series map[seriesKey]*series // nil value: no rule matches
	list   []*series             // the matched series, ordered by (device, name)
	clock  clock
	lsn    uint64 // of the latest input
	seq    uint32 // of the next event at lsn

	mu     sync.Mutex
	active map[*instance]Alert // snapshot of the non-inactive instances
}

type seriesKey struct{ device, name string }

// series is the state of one (device, series) some rule matches.
type series struct {
	device, name string
	insts        []instance // one per matching rule, in rule order
	absent       bool       // an absence rule matches
	heard        bool
	heardMono    int64
}

// instance is one (rule, device, series).
type instance struct {
	rule  *rule
	state state
	// Rate memory: the latest value by event time (window start).
	hasPrev bool
	prevT   int64
	prevV   float64
	last    float64 // latest evaluated value, for promotions on ticks
	// The current cycle; zero while inactive.
	startLSN     uint64
	startSeq     uint32
	id           string
	startMono    int64
	startWall    int64
	sinceWall    int64
	notifiedMono int64
	value        float64
	resolvedWall int64
}

// New returns an engine for the rules, which it validates (see
// ValidateRules). It keeps a copy of them.
func New(rules []Rule, opts Options) (*Engine, error) {
	rules = slices.Clone(rules)
	for i := range rules {
		rules[i].Labels = maps.Clone(rules[i].Labels)
	}
	cs, err := compileAll(rules)
	if err != nil {
		return nil, err
	}
	e := &Engine{rules: cs, series: map[seriesKey]*series{}, active: map[*instance]Alert{}}
	switch {
	case opts.ClockStep == 0:
		e.step = int64(DefaultClockStep)
	case opts.ClockStep < 0:
		e.step = -1
	default:
		e.step = int64(opts.ClockStep)
	}
	e.hash = rulesHash(cs, e.step)
	return e, nil
}

// LastLSN is the LSN of the latest input. Inputs with a lower LSN are
// ignored: after restoring a checkpoint, feed the records after it.
func (e *Engine) LastLSN() uint64 { return e.lsn }

// begin starts processing an input at lsn, reporting false if it is
// behind the engine.
func (e *Engine) begin(lsn uint64) bool {
	if lsn < e.lsn {
		return false
	}
	if lsn > e.lsn {
		e.lsn, e.seq = lsn, 0
	}
	return true
}

// Reading evaluates the raw-reading rules on r. A reading with an
// untrusted event time or a NaN/±Inf value is not evaluated (neither for
// thresholds nor for rates) but counts as heard from for absence. Its
// ingest time advances processing time.
func (e *Engine) Reading(r *edged.Reading, emit func(Event)) {
	if !e.begin(r.LSN) {
		return
	}
	e.clock.advance(r.Ingest, e.step)
	s := e.lookup(r.Device, r.Series)
	if s == nil {
		return
	}
	ok := !r.Flags.Untrusted() && finite(r.Value)
	for i := range s.insts {
		in := &s.insts[i]
		switch {
		case in.rule.kind == kindAbsent:
			e.heard(s, in, emit)
		case in.rule.window == 0 && ok:
			e.observe(s, in, r.Time, r.Value, emit)
		}
	}
	if s.absent {
		s.heard, s.heardMono = true, e.clock.mono
	}
}

// Window evaluates the window rules of w's size on a closed window.
// Amendments carry no values and are ignored.
func (e *Engine) Window(w *aggregate.Window, emit func(Event)) {
	if w.Amended || w.Count == 0 || !e.begin(w.CloseLSN) {
		return
	}
	s := e.lookup(w.Device, w.Series)
	if s == nil {
		return
	}
	for i := range s.insts {
		in := &s.insts[i]
		if in.rule.window != int64(w.Size) {
			continue
		}
		if v, ok := windowValue(w, in.rule); ok && finite(v) {
			e.observe(s, in, w.Start, v, emit)
		}
	}
}

func windowValue(w *aggregate.Window, r *rule) (float64, bool) {
	switch r.agg {
	case aggMean:
		return w.Mean, true
	case aggMin:
		return w.Min, true
	case aggMax:
		return w.Max, true
	case aggSum:
		return w.Sum, true
	case aggCount:
		return float64(w.Count), true
	case aggFirst:
		return w.First.Value, true
	case aggLast:
		return w.Last.Value, true
	}
	for _, q := range w.Quantiles {
		if math.Abs(q.Q-r.q) < 1e-9 {
			return q.Value, true
		}
	}
	return 0, false // the aggregator does not compute this quantile
}

// Tick advances processing time to now: pending alerts whose for has
// elapsed fire, silent series fire their absence rules, and firing alerts
// due are renotified. Events are emitted in order of (device, series),
// then rule.
func (e *Engine) Tick(now int64, lsn uint64, emit func(Event)) {
	if !e.begin(lsn) {
		return
	}
	e.clock.advance(now, e.step)
	mono := e.clock.mono
	for _, s := range e.list {
		for i := range s.insts {
			in := &s.insts[i]
			r := in.rule
			if r.kind == kindAbsent && s.heard {
				in.last = float64(mono-s.heardMono) / 1e9
				if (in.state == inactive || in.state == resolved) && mono-s.heardMono >= r.absentNs {
					e.start(s, in, in.last, emit)
					continue
				}
			}
			switch {
			case in.state == pending && mono-in.startMono >= r.forNs:
				e.enter(s, in, firing, in.last, r.fire, emit)
			case in.state == firing && r.renotifyNs > 0 && mono-in.notifiedMono >= r.renotifyNs:
				in.notifiedMono = mono
				e.emit(s, in, in.last, r.fire, true, emit)
			}
		}
	}
}

// lookup returns the series, or nil when no rule matches it. Which rules
// match is decided once per series.
func (e *Engine) lookup(device, name string) *series {
	if s, ok := e.series[seriesKey{device, name}]; ok {
		return s
	}
	s := e.newSeries(device, name)
	e.series[seriesKey{device, name}] = s
	if s != nil {
		i, _ := slices.BinarySearchFunc(e.list, s, compareSeries)
		e.list = slices.Insert(e.list, i, s)
	}
	return s
}

func (e *Engine) newSeries(device, name string) *series {
	var insts []instance
	for i := range e.rules {
		if e.rules[i].matches(device, name) {
			insts = append(insts, instance{rule: &e.rules[i]})
		}
	}
	if insts == nil {
		return nil
	}
	s := &series{device: device, name: name, insts: insts}
	for i := range insts {
		s.absent = s.absent || insts[i].rule.kind == kindAbsent
	}
	return s
}

func compareSeries(a, b *series) int {
	return cmp.Or(cmp.Compare(a.device, b.device), cmp.Compare(a.name, b.name))
}

// Alerts returns the instances that are not inactive, ordered by rule,
// device and series.
func (e *Engine) Alerts() []Alert {
	e.mu.Lock()
	out := make([]Alert, 0, len(e.active))
	for _, a := range e.active {
		a.Labels = maps.Clone(a.Labels)
		out = append(out, a)
	}
	e.mu.Unlock()
	slices.SortFunc(out, func(a, b Alert) int {
		return cmp.Or(cmp.Compare(a.Rule, b.Rule), cmp.Compare(a.Device, b.Device), cmp.Compare(a.Series, b.Series))
	})
	return out
}

// Counts returns the number of instances pending, firing and resolved,
// keyed by state (all three keys present).
func (e *Engine) Counts() map[string]int {
	c := map[string]int{StatePending: 0, StateFiring: 0, StateResolved: 0}
	e.mu.Lock()
	for _, a := range e.active {
		c[a.State]++
	}
	e.mu.Unlock()
	return c
}

// clock is processing time as the inputs tell it. hi is the latest
// processing time taken into account (reported in events); mono the
// processing time elapsed since the first input, without clock steps,
// which every timer runs on.
type clock struct {
	set      bool
	hi, mono int64
}

func (c *clock) advance(t, step int64) {
	switch {
	case !c.set:
		c.set, c.hi = true, t
	case t > c.hi:
		d := uint64(t) - uint64(c.hi)
		if step < 0 || d <= uint64(step) {
			c.mono = int64(min(uint64(c.mono)+d, math.MaxInt64))
		}
		c.hi = t
	case t < c.hi && step >= 0 && uint64(c.hi)-uint64(t) > uint64(step):
		// Set back: carry on from the new reading of the clock. Smaller
		// steps back (readings stamped just before the latest tick) are
		// jitter: time does not advance until the clock passes hi again.
		c.hi = t
	}
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
