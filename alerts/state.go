package alerts

import (
	"encoding/binary"
	"encoding/hex"
)

// The state machine of one instance; see the package documentation.

// observe feeds one value at event time t to a threshold or rate
// instance. A rate is taken against the latest earlier value; a value not
// after it is skipped, for the rate, and does not replace it.
func (e *Engine) observe(s *series, in *instance, t int64, v float64, emit func(Event)) {
	if in.rule.kind.rate() {
		if in.hasPrev && t <= in.prevT {
			return
		}
		had, pt, pv := in.hasPrev, in.prevT, in.prevV
		in.hasPrev, in.prevT, in.prevV = true, t, v
		if !had {
			return
		}
		// uint64: exact even where t − pt overflows int64.
		v = (v - pv) / (float64(uint64(t)-uint64(pt)) / 1e9)
		if !finite(v) {
			return
		}
	}
	in.last = v
	r := in.rule
	switch in.state {
	case inactive, resolved:
		if r.fires(v) {
			e.start(s, in, v, emit)
		}
	case pending:
		switch {
		case !r.fires(v):
			e.enter(s, in, inactive, v, r.fire, emit)
		case e.clock.mono-in.startMono >= r.forNs:
			e.enter(s, in, firing, v, r.fire, emit)
		}
	case firing:
		if r.clears(v) {
			e.enter(s, in, resolved, v, r.clear, emit)
		}
	}
}

// heard handles a reading for an absence instance: the silence is over.
func (e *Engine) heard(s *series, in *instance, emit func(Event)) {
	silence := float64(e.clock.mono-s.heardMono) / 1e9
	switch in.state {
	case pending:
		e.enter(s, in, inactive, silence, in.rule.fire, emit)
	case firing:
		e.enter(s, in, resolved, silence, in.rule.clear, emit)
	}
}

// start begins a cycle: pending, or firing at once without for.
func (e *Engine) start(s *series, in *instance, v float64, emit func(Event)) {
	in.startLSN, in.startSeq = e.lsn, e.seq
	in.id = eventID(in.rule.Name, s.device, s.name, e.lsn, e.seq)
	in.startMono, in.startWall, in.resolvedWall = e.clock.mono, e.clock.hi, 0
	if in.rule.forNs > 0 {
		e.enter(s, in, pending, v, in.rule.fire, emit)
	} else {
		e.enter(s, in, firing, v, in.rule.fire, emit)
	}
}

func (e *Engine) enter(s *series, in *instance, st state, v, threshold float64, emit func(Event)) {
	in.state, in.value, in.sinceWall = st, v, e.clock.hi
	switch st {
	case firing:
		in.notifiedMono = e.clock.mono
	case resolved:
		in.resolvedWall = e.clock.hi
	}
	e.emit(s, in, v, threshold, false, emit)
	e.mu.Lock()
	if st == inactive {
		delete(e.active, in)
	} else {
		e.active[in] = in.alert(s)
	}
	e.mu.Unlock()
	if st == inactive {
		// Keep the rate memory; forget the cycle, so that the state (and
		// the checkpoint) only holds what matters.
		*in = instance{rule: in.rule, hasPrev: in.hasPrev, prevT: in.prevT, prevV: in.prevV, last: in.last}
	}
}

func (e *Engine) emit(s *series, in *instance, v, threshold float64, renotify bool, emit func(Event)) {
	ev := Event{
		Rule: in.rule.Name, Device: s.device, Series: s.name, State: stateNames[in.state],
		Value: v, Threshold: threshold, Severity: in.rule.severity, Labels: in.rule.Labels,
		Started: in.startWall, Resolved: in.resolvedWall, ID: in.id, Renotify: renotify,
		LSN: e.lsn, Seq: e.seq,
	}
	e.seq++
	if emit != nil {
		emit(ev)
	}
}

func (in *instance) alert(s *series) Alert {
	th := in.rule.fire
	if in.state == resolved {
		th = in.rule.clear
	}
	return Alert{
		Rule: in.rule.Name, Device: s.device, Series: s.name, State: stateNames[in.state],
		Value: in.value, Threshold: th, Started: in.startWall, Since: in.sinceWall,
		ID: in.id, Severity: in.rule.severity, Labels: in.rule.Labels,
	}
}

// eventID is the hex FNV-64a hash of rule, device and series (each
// followed by a zero byte) and the (LSN, Seq) of the cycle's first event
// (8 and 4 bytes, big-endian): stable across replays, distinct between
// cycles.
func eventID(rule, device, series string, lsn uint64, seq uint32) string {
	const offset, prime = 14695981039346656037, 1099511628211
	h := uint64(offset)
	for _, s := range [...]string{rule, device, series} {
		for i := 0; i < len(s); i++ {
			h = (h ^ uint64(s[i])) * prime
		}
		h *= prime // ^ 0
	}
	for i := 7; i >= 0; i-- {
		h = (h ^ (lsn >> (8 * i) & 0xff)) * prime
	}
	for i := 3; i >= 0; i-- {
		h = (h ^ uint64(seq>>(8*i)&0xff)) * prime
	}
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], h)
	return hex.EncodeToString(b[:])
}
