package alerts

import (
	"crypto/sha256"
	"encoding"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"

	"github.com/edged-io/edged"
	"github.com/edged-io/edged/internal/binread"
)

// A checkpoint is laid out as (little-endian; varints as in encoding/binary):
//
//	magic "EDGEDALR" | version u8 = 1 | rules hash [32]byte | last LSN uvarint
//	| next seq uvarint | clock set u8 | clock hi varint | clock mono varint
//	| series count uvarint | series… (ascending device, name) | CRC32C u32 of all before it
//
//	series:   device str | name str | heard u8 | heard mono varint
//	          | instance count uvarint | instance… (ascending rule index)
//	instance: rule index uvarint | state u8 | has-prev u8 | prev time varint
//	          | prev value u64 | last u64 | start LSN uvarint | start seq uvarint
//	          | start mono varint | start wall varint | since wall varint
//	          | notified mono varint | value u64 | resolved wall varint
//	str:      length uvarint | bytes
//
// Instances with nothing to remember (inactive, no rate memory) are left
// out; every series some rule has matched is written. Floats are their
// IEEE 754 bits. The bytes are a function of the state alone: two engines
// fed the same inputs checkpoint identically.

const (
	checkpointMagic   = "EDGEDALR"
	checkpointVersion = 1
)

var (
	// ErrCheckpoint reports bytes that are not a checkpoint this version
	// can load.
	ErrCheckpoint = errors.New("alerts: bad checkpoint")
	// ErrCheckpointRules reports a checkpoint taken with other rules or
	// options: rebuild the alert state by replaying the log instead.
	ErrCheckpointRules = errors.New("alerts: checkpoint taken with other rules or options (rebuild the alert state by replaying the log)")
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

var (
	_ encoding.BinaryMarshaler   = (*Engine)(nil)
	_ encoding.BinaryUnmarshaler = (*Engine)(nil)
)

// rulesHash identifies what the state depends on: every field of every
// rule, in order, but severity and labels (which only decorate events, so
// changing them keeps a checkpoint valid), and the clock step.
func rulesHash(rules []rule, step int64) [32]byte {
	var b []byte
	b = binary.AppendVarint(b, step)
	for _, r := range rules {
		for _, s := range [...]string{r.Name, r.Series, r.Device} {
			b = appendString(b, s)
		}
		b = append(b, byte(r.kind), byte(r.agg))
		for _, f := range [...]float64{r.fire, r.clear, r.q} {
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(f))
		}
		for _, d := range [...]int64{r.window, r.forNs, r.absentNs, r.renotifyNs} {
			b = binary.AppendVarint(b, d)
		}
	}
	return sha256.Sum256(b)
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendBool(b []byte, v bool) []byte {
	if v {
		return append(b, 1)
	}
	return append(b, 0)
}

func appendFloat(b []byte, f float64) []byte {
	return binary.LittleEndian.AppendUint64(b, math.Float64bits(f))
}

// MarshalBinary returns the engine's whole state. Take it between
// records; it covers the log up to LastLSN.
func (e *Engine) MarshalBinary() ([]byte, error) {
	b := append([]byte(checkpointMagic), checkpointVersion)
	b = append(b, e.hash[:]...)
	b = binary.AppendUvarint(b, e.lsn)
	b = binary.AppendUvarint(b, uint64(e.seq))
	b = appendBool(b, e.clock.set)
	b = binary.AppendVarint(b, e.clock.hi)
	b = binary.AppendVarint(b, e.clock.mono)
	b = binary.AppendUvarint(b, uint64(len(e.list)))
	for _, s := range e.list {
		b = appendString(b, s.device)
		b = appendString(b, s.name)
		b = appendBool(b, s.heard)
		b = binary.AppendVarint(b, s.heardMono)
		n := 0
		for i := range s.insts {
			if !s.insts[i].empty() {
				n++
			}
		}
		b = binary.AppendUvarint(b, uint64(n))
		for i := range s.insts {
			if in := &s.insts[i]; !in.empty() {
				b = appendInstance(b, in)
			}
		}
	}
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli)), nil
}

func (in *instance) empty() bool { return in.state == inactive && !in.hasPrev }

func appendInstance(b []byte, in *instance) []byte {
	b = binary.AppendUvarint(b, uint64(in.rule.index))
	b = append(b, byte(in.state))
	b = appendBool(b, in.hasPrev)
	b = binary.AppendVarint(b, in.prevT)
	b = appendFloat(b, in.prevV)
	b = appendFloat(b, in.last)
	b = binary.AppendUvarint(b, in.startLSN)
	b = binary.AppendUvarint(b, uint64(in.startSeq))
	for _, v := range [...]int64{in.startMono, in.startWall, in.sinceWall, in.notifiedMono} {
		b = binary.AppendVarint(b, v)
	}
	b = appendFloat(b, in.value)
	return binary.AppendVarint(b, in.resolvedWall)
}

// UnmarshalBinary restores a checkpoint taken by an engine with the same
// rules and options (else ErrCheckpointRules; severity and labels may
// differ). Bytes that are not a valid checkpoint give an error wrapping
// ErrCheckpoint. On error the engine is unchanged. Call it from the
// goroutine that feeds the engine.
func (e *Engine) UnmarshalBinary(b []byte) error {
	head := len(checkpointMagic) + 1
	if len(b) < head+len(e.hash)+4 || string(b[:len(checkpointMagic)]) != checkpointMagic {
		return fmt.Errorf("%w: no magic", ErrCheckpoint)
	}
	body, sum := b[:len(b)-4], binary.LittleEndian.Uint32(b[len(b)-4:])
	if crc32.Checksum(body, castagnoli) != sum {
		return fmt.Errorf("%w: checksum mismatch", ErrCheckpoint)
	}
	if v := body[len(checkpointMagic)]; v != checkpointVersion {
		return fmt.Errorf("%w: version %d (this build reads %d)", ErrCheckpoint, v, checkpointVersion)
	}
	if string(body[head:head+len(e.hash)]) != string(e.hash[:]) {
		return ErrCheckpointRules
	}
	d := binread.New(body[head+len(e.hash):], ErrCheckpoint)
	t := &Engine{rules: e.rules, step: e.step, hash: e.hash, series: map[seriesKey]*series{}, active: map[*instance]Alert{}}
	t.lsn = d.Uvarint()
	t.seq = uint32(d.Uvarint())
	t.clock.set = readBool(d)
	t.clock.hi = d.Varint()
	t.clock.mono = d.Varint()
	if d.Err() == nil && (t.clock.mono < 0 || !t.clock.set && (t.clock.hi != 0 || t.clock.mono != 0)) {
		d.Fail("clock %d/%d", t.clock.hi, t.clock.mono)
	}
	n := d.Uvarint()
	if d.Err() == nil && n > uint64(len(d.B)) {
		d.Fail("%d series", n)
	}
	for i := uint64(0); i < n && d.Err() == nil; i++ {
		t.readSeries(d)
	}
	if err := d.End(); err != nil {
		return err
	}
	for _, s := range t.list {
		for i := range s.insts {
			if in := &s.insts[i]; in.state != inactive {
				in.id = eventID(in.rule.Name, s.device, s.name, in.startLSN, in.startSeq)
				t.active[in] = in.alert(s)
			}
		}
	}
	e.mu.Lock()
	e.series, e.list, e.clock, e.lsn, e.seq, e.active = t.series, t.list, t.clock, t.lsn, t.seq, t.active
	e.mu.Unlock()
	return nil
}

func readBool(d *binread.Reader) bool {
	switch v := d.Byte(); v {
	case 0:
		return false
	case 1:
		return true
	default:
		d.Fail("bool %d", v)
		return false
	}
}

// readSeries reads one series into t, checking what the engine relies on:
// order, that its rules match it, that timers are not ahead of the clock.
func (t *Engine) readSeries(d *binread.Reader) {
	device, name := d.String(edged.MaxStringLen), d.String(edged.MaxStringLen)
	heard, heardMono := readBool(d), d.Varint()
	if d.Err() != nil {
		return
	}
	s := t.newSeries(device, name)
	switch {
	case s == nil:
		d.Fail("no rule matches series %q/%q", device, name)
	case len(t.list) > 0 && compareSeries(t.list[len(t.list)-1], s) >= 0:
		d.Fail("series %q/%q out of order", device, name)
	case !heard && heardMono != 0 || heard && !s.absent || !t.inClock(heardMono):
		d.Fail("series %q/%q: heard %d", device, name, heardMono)
	}
	if d.Err() != nil {
		return
	}
	s.heard, s.heardMono = heard, heardMono
	n := d.Uvarint()
	next := 0 // index into s.insts
	for k := uint64(0); k < n && d.Err() == nil; k++ {
		ri := d.Uvarint()
		for next < len(s.insts) && uint64(s.insts[next].rule.index) < ri {
			next++
		}
		if next == len(s.insts) || uint64(s.insts[next].rule.index) != ri {
			d.Fail("series %q/%q: rule %d out of order or not matching", device, name, ri)
			return
		}
		t.readInstance(d, &s.insts[next])
		next++
	}
	if d.Err() == nil {
		t.list = append(t.list, s)
		t.series[seriesKey{device, name}] = s
	}
}

func (t *Engine) readInstance(d *binread.Reader, in *instance) {
	st := d.Byte()
	in.state = state(st)
	in.hasPrev = readBool(d)
	in.prevT = d.Varint()
	in.prevV = math.Float64frombits(d.Uint64())
	in.last = math.Float64frombits(d.Uint64())
	in.startLSN = d.Uvarint()
	seq := d.Uvarint()
	in.startSeq = uint32(seq)
	in.startMono, in.startWall, in.sinceWall, in.notifiedMono = d.Varint(), d.Varint(), d.Varint(), d.Varint()
	in.value = math.Float64frombits(d.Uint64())
	in.resolvedWall = d.Varint()
	if d.Err() != nil {
		return
	}
	switch {
	case st > byte(resolved) || seq > math.MaxUint32:
		d.Fail("rule %d: state %d seq %d", in.rule.index, st, seq)
	case in.hasPrev && !in.rule.kind.rate() || !in.hasPrev && (in.prevT != 0 || in.prevV != 0):
		d.Fail("rule %d: rate memory", in.rule.index)
	case in.empty():
		d.Fail("rule %d: empty instance", in.rule.index)
	case in.state == inactive && *in != instance{rule: in.rule, hasPrev: true, prevT: in.prevT, prevV: in.prevV, last: in.last}:
		d.Fail("rule %d: inactive instance with a cycle", in.rule.index)
	case !t.inClock(in.startMono) || !t.inClock(in.notifiedMono):
		d.Fail("rule %d: timers ahead of the clock", in.rule.index)
	}
}

func (t *Engine) inClock(mono int64) bool { return mono >= 0 && mono <= t.clock.mono }
