package view

import (
	"encoding/binary"
	"errors"
	"math"
	"time"

	"github.com/edged-io/edged"
	"github.com/edged-io/edged/internal/binread"
)

// The estimates log (a second wal.Log beside the readings log, written by
// aggregate/stream, read by sync/ship) carries two kinds of record:
//
//	row:     kind=1 | device | series | unit | size ns (uvarint) | start (varint) | end (varint)
//	         | n (uvarint) | n × (field name | float64 bits, little-endian)
//	through: kind=2 | lsn (uvarint)
//
// Strings are a uvarint length then bytes. A row record is the window's
// whole row after an emission or amendment was folded in (its accounting is
// cumulative), so the latest row of a window supersedes every earlier one
// and shipping rows is idempotent. Fields are named, and NaN (unset) fields
// are left out, so a reader built with other Fields still decodes them.
//
// A through record says the aggregator has processed the readings log
// through lsn and every row it produced up to there is before the record.
const (
	RecordRow     byte = 1
	RecordThrough byte = 2
)

// ErrBadRecord reports an estimates-log record that does not decode.
var ErrBadRecord = errors.New("view: bad estimates record")

// AppendRowRecord appends r as a row record.
func AppendRowRecord(dst []byte, r *Row) []byte {
	dst = append(dst, RecordRow)
	dst = appendString(dst, r.Device)
	dst = appendString(dst, r.Series)
	dst = appendString(dst, r.Unit)
	dst = binary.AppendUvarint(dst, uint64(r.Size))
	dst = binary.AppendVarint(dst, r.Start)
	dst = binary.AppendVarint(dst, r.End)
	n := 0
	for i := range r.Values {
		if !math.IsNaN(r.Values[i]) {
			n++
		}
	}
	dst = binary.AppendUvarint(dst, uint64(n))
	for i, v := range r.Values {
		if math.IsNaN(v) || i >= len(Fields) {
			continue
		}
		dst = appendString(dst, Fields[i])
		dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(v))
	}
	return dst
}

// AppendThroughRecord appends a through record for lsn.
func AppendThroughRecord(dst []byte, lsn uint64) []byte {
	return binary.AppendUvarint(append(dst, RecordThrough), lsn)
}

// DecodeRecord decodes an estimates-log record: a row (kind RecordRow) or a
// through LSN (kind RecordThrough). Fields the row does not carry, or that
// this build does not know, are NaN in row.Values.
func DecodeRecord(b []byte) (kind byte, row Row, through uint64, err error) {
	d := binread.New(b, ErrBadRecord)
	kind = d.Byte()
	switch kind {
	case RecordThrough:
		through = d.Uvarint()
	case RecordRow:
		row.Device = d.String(edged.MaxStringLen)
		row.Series = d.String(edged.MaxStringLen)
		row.Unit = d.String(edged.MaxStringLen)
		size := d.Uvarint()
		if size == 0 || size > math.MaxInt64 {
			d.Fail("window size %d", size)
		}
		row.Size = time.Duration(size)
		row.Start = d.Varint()
		row.End = d.Varint()
		n := d.Uvarint()
		if n > uint64(len(d.B)) {
			d.Fail("%d fields in %d bytes", n, len(d.B))
		}
		row.Values = nanRow()
		for range n {
			name := d.String(edged.MaxStringLen)
			bits := d.Uint64()
			if i := FieldIndex(name); i >= 0 {
				row.Values[i] = math.Float64frombits(bits)
			}
		}
	default:
		d.Fail("unknown kind %d", kind)
	}
	if err := d.End(); err != nil {
		return 0, Row{}, 0, err
	}
	return kind, row, through, nil
}

func appendString(dst []byte, s string) []byte {
	return append(binary.AppendUvarint(dst, uint64(len(s))), s...)
}
