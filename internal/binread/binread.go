// Package binread decodes the little-endian, varint-based binary encodings
// edged writes (log records, checkpoints) with a sticky error: after the
// first problem every read returns a zero value and Err reports it, so a
// decoder reads straight through and checks once.
package binread

import (
	"encoding/binary"
	"fmt"
)

// Reader reads from B. Its zero value is not usable; use New.
type Reader struct {
	B        []byte
	err      error
	sentinel error
}

// New returns a reader whose errors wrap sentinel.
func New(b []byte, sentinel error) *Reader { return &Reader{B: b, sentinel: sentinel} }

// Err is the first error, or nil.
func (d *Reader) Err() error { return d.err }

// Fail records an error (wrapping the sentinel) unless one is recorded.
func (d *Reader) Fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s", d.sentinel, fmt.Sprintf(format, args...))
	}
}

// Byte reads one byte.
func (d *Reader) Byte() byte {
	if d.err != nil {
		return 0
	}
	if len(d.B) == 0 {
		d.Fail("truncated")
		return 0
	}
	c := d.B[0]
	d.B = d.B[1:]
	return c
}

// Uvarint reads an unsigned varint.
func (d *Reader) Uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.B)
	if n <= 0 {
		d.Fail("bad varint")
		return 0
	}
	d.B = d.B[n:]
	return v
}

// Varint reads a signed varint.
func (d *Reader) Varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.B)
	if n <= 0 {
		d.Fail("bad varint")
		return 0
	}
	d.B = d.B[n:]
	return v
}

// Uint64 reads a little-endian uint64.
func (d *Reader) Uint64() uint64 {
	if d.err != nil {
		return 0
	}
	if len(d.B) < 8 {
		d.Fail("truncated")
		return 0
	}
	v := binary.LittleEndian.Uint64(d.B)
	d.B = d.B[8:]
	return v
}

// String reads a uvarint length and that many bytes, at most max.
func (d *Reader) String(max int) string {
	n := d.Uvarint()
	if d.err == nil && (n > uint64(max) || n > uint64(len(d.B))) {
		d.Fail("string of %d bytes", n)
	}
	if d.err != nil {
		return ""
	}
	s := string(d.B[:n])
	d.B = d.B[n:]
	return s
}

// Bytes reads a uvarint length and that many bytes, at most max, without
// copying: the result aliases B.
func (d *Reader) Bytes(max int) []byte {
	n := d.Uvarint()
	if d.err == nil && (n > uint64(max) || n > uint64(len(d.B))) {
		d.Fail("string of %d bytes", n)
	}
	if d.err != nil {
		return nil
	}
	b := d.B[:n:n]
	d.B = d.B[n:]
	return b
}

// End fails if bytes are left over, and returns Err.
func (d *Reader) End() error {
	if d.err == nil && len(d.B) != 0 {
		d.Fail("%d trailing bytes", len(d.B))
	}
	return d.err
}
