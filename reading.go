// Package edged holds the one type every part of edged shares: the
// Reading, and its encoding as a write-ahead-log record. Sources produce
// readings, the log stores them, the aggregator, the alert engine and the
// shipper consume them. It depends on the standard library only (and
// internal/binread, itself standard-library only).
package edged

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/edged-io/edged/internal/binread"
)

// Reading is one value of one sensor series at one instant.
type Reading struct {
	// Device is the id of the edge device that took the reading.
	Device string
	// Series names the sensor quantity, e.g. "greenhouse/temperature".
	Series string
	// Unit is the unit of Value when known: "°C", "%", "hPa", …
	Unit string
	// Value is the measurement.
	Value float64
	// Time is the event time in nanoseconds since the Unix epoch (UTC):
	// from the payload when it has one, else the ingest time.
	Time int64
	// Ingest is the local clock when the reading was received.
	Ingest int64
	// Flags say how trustworthy Time is.
	Flags Flags
	// LSN is the write-ahead-log sequence number of the record that holds
	// the reading; zero until it has been appended.
	LSN uint64
}

// Key is the identity of a reading: two readings with the same Key are
// duplicates (same value) or a conflict (different value).
type Key struct {
	Device, Series string
	Time           int64
}

// Key returns the reading's identity.
func (r *Reading) Key() Key { return Key{r.Device, r.Series, r.Time} }

// Flags qualify a reading's event time.
type Flags uint8

const (
	// TimeFromIngest: the payload had no timestamp; Time is the ingest time.
	TimeFromIngest Flags = 1 << iota
	// ClockUnsynced: the local clock was not synchronised when the reading
	// was taken (a Raspberry Pi has no RTC), so Time may be wrong.
	ClockUnsynced
	// TimeAbsurd: Time is implausibly far from the ingest time.
	TimeAbsurd
)

// Untrusted reports whether the event time must not be mixed into current
// windows.
func (f Flags) Untrusted() bool { return f&(ClockUnsynced|TimeAbsurd) != 0 }

// RecordKind is the first byte of every log record edged writes.
type RecordKind uint8

const (
	// KindReadings: the readings of one ingest event (one MQTT message,
	// one sensor poll), so that acknowledging the message and making its
	// readings durable are the same act.
	KindReadings RecordKind = 1
	// KindTick: a processing-time instant at which the daemon acted on the
	// wall clock (closing idle windows). Logging it makes replay repeat the
	// decision: every view is a pure function of the log.
	KindTick RecordKind = 2
)

// Kind returns the kind of a log record (0 if empty).
func Kind(b []byte) RecordKind {
	if len(b) == 0 {
		return 0
	}
	return RecordKind(b[0])
}

// AppendTick encodes a tick at processing time now (ns since the epoch).
func AppendTick(dst []byte, now int64) []byte {
	return binary.AppendVarint(append(dst, byte(KindTick)), now)
}

// DecodeTick decodes a tick record.
func DecodeTick(b []byte) (int64, error) {
	d := binread.New(b, ErrBadRecord)
	if k := d.Byte(); RecordKind(k) != KindTick {
		return 0, fmt.Errorf("%w: kind %d is not a tick", ErrBadRecord, k)
	}
	now := d.Varint()
	return now, d.End()
}

// A readings record is laid out as (little-endian, varints as in
// encoding/binary):
//
//	kind u8 = 1 | count uvarint > 0 | count × reading
//	reading: flags u8 | time varint | ingest-time varint (delta to time)
//	         | value u64 (IEEE 754 bits) | device str | series str | unit str
//	str: length uvarint | bytes

// MaxStringLen bounds device, series and unit names.
const MaxStringLen = 1024

// ErrBadRecord reports a log record that is not a valid reading batch.
var ErrBadRecord = errors.New("edged: bad reading record")

// AppendRecord encodes readings as one log record appended to dst.
func AppendRecord(dst []byte, rs []Reading) ([]byte, error) {
	if len(rs) == 0 {
		return dst, fmt.Errorf("%w: no readings", ErrBadRecord)
	}
	dst = append(dst, byte(KindReadings))
	dst = binary.AppendUvarint(dst, uint64(len(rs)))
	for i := range rs {
		r := &rs[i]
		for _, s := range []string{r.Device, r.Series, r.Unit} {
			if len(s) > MaxStringLen {
				return dst, fmt.Errorf("%w: name of %d bytes (limit %d)", ErrBadRecord, len(s), MaxStringLen)
			}
		}
		dst = append(dst, byte(r.Flags))
		dst = binary.AppendVarint(dst, r.Time)
		dst = binary.AppendVarint(dst, r.Ingest-r.Time)
		dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(r.Value))
		dst = appendString(dst, r.Device)
		dst = appendString(dst, r.Series)
		dst = appendString(dst, r.Unit)
	}
	return dst, nil
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// DecodeRecord decodes a log record, appending its readings to dst with
// LSN set to lsn. Strings are copied, so b may be reused.
func DecodeRecord(dst []Reading, b []byte, lsn uint64) ([]Reading, error) {
	return decodeRecord(dst, b, lsn, func(s []byte) string { return string(s) })
}

// RecordDecoder decodes log records like DecodeRecord but keeps one copy of
// each device, series and unit name it has seen, so that a long replay
// allocates no strings. Its memory grows with the number of distinct names.
// Not safe for concurrent use.
type RecordDecoder struct {
	names map[string]string
}

// Decode is DecodeRecord with interned names.
func (rd *RecordDecoder) Decode(dst []Reading, b []byte, lsn uint64) ([]Reading, error) {
	if rd.names == nil {
		rd.names = map[string]string{}
	}
	return decodeRecord(dst, b, lsn, rd.intern)
}

func (rd *RecordDecoder) intern(b []byte) string {
	if s, ok := rd.names[string(b)]; ok { // no allocation for the lookup
		return s
	}
	s := string(b)
	rd.names[s] = s
	return s
}

// DecodeKnown is Decode for a consumer that keeps its own table of name
// triples (the aggregator's series): for each reading, known is first
// given the encoded triple — device, series and unit, each a uvarint length
// then the bytes, exactly as they are in the record — and when it returns
// ok its names are used: one lookup instead of three. Otherwise the names
// are decoded and interned. known is called once per reading, in order.
func (rd *RecordDecoder) DecodeKnown(dst []Reading, b []byte, lsn uint64, known func(key []byte) (device, series, unit string, ok bool)) ([]Reading, error) {
	if rd.names == nil {
		rd.names = map[string]string{}
	}
	return decodeRecordKnown(dst, b, lsn, rd.intern, known)
}

func decodeRecord(dst []Reading, b []byte, lsn uint64, str func([]byte) string) ([]Reading, error) {
	return decodeRecordKnown(dst, b, lsn, str, nil)
}

func decodeRecordKnown(dst []Reading, b []byte, lsn uint64, str func([]byte) string, known func([]byte) (string, string, string, bool)) ([]Reading, error) {
	d := binread.New(b, ErrBadRecord)
	if k := d.Byte(); RecordKind(k) != KindReadings {
		return dst, fmt.Errorf("%w: kind %d is not readings", ErrBadRecord, k)
	}
	n := d.Uvarint()
	if d.Err() == nil && (n == 0 || n > uint64(len(b))) { // each reading takes > 1 byte
		d.Fail("count %d", n)
	}
	for i := uint64(0); i < n && d.Err() == nil; i++ {
		var r Reading
		r.Flags = Flags(d.Byte())
		r.Time = d.Varint()
		r.Ingest = r.Time + d.Varint()
		r.Value = math.Float64frombits(d.Uint64())
		names := d.B
		dev, ser, unit := d.Bytes(MaxStringLen), d.Bytes(MaxStringLen), d.Bytes(MaxStringLen)
		ok := false
		if known != nil && d.Err() == nil {
			r.Device, r.Series, r.Unit, ok = known(names[:len(names)-len(d.B)])
		}
		if !ok {
			r.Device, r.Series, r.Unit = str(dev), str(ser), str(unit)
		}
		r.LSN = lsn
		if d.Err() == nil {
			dst = append(dst, r)
		}
	}
	return dst, d.End()
}
