package wal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
)

// On-disk constants; see the package documentation for the diagrams.
const (
	headerSize      = 32
	frameHeaderSize = 8
	formatVersion   = 1

	// MaxRecordSize is the largest payload Append accepts.
	MaxRecordSize = 16 << 20
)

var segmentMagic = [8]byte{'E', 'D', 'G', 'E', 'D', 'W', 'A', 'L'}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// segmentHeader is the fixed 32-byte preamble of every segment file.
type segmentHeader struct {
	FirstLSN uint64 // also the segment id and the file name
	Created  int64  // unix nanoseconds, informational
}

func (h segmentHeader) encode() []byte {
	b := make([]byte, headerSize)
	copy(b[0:8], segmentMagic[:])
	binary.LittleEndian.PutUint16(b[8:10], formatVersion)
	// b[10:12] flags, zero in version 1.
	binary.LittleEndian.PutUint64(b[12:20], h.FirstLSN)
	binary.LittleEndian.PutUint64(b[20:28], uint64(h.Created))
	binary.LittleEndian.PutUint32(b[28:32], crc32.Checksum(b[0:28], castagnoli))
	return b
}

// errBadHeader reports a segment header that is short, has the wrong magic or
// version, or fails its checksum.
var errBadHeader = errors.New("wal: bad segment header")

func decodeHeader(b []byte) (segmentHeader, error) {
	if len(b) < headerSize {
		return segmentHeader{}, fmt.Errorf("%w: %d bytes, want %d", errBadHeader, len(b), headerSize)
	}
	if [8]byte(b[0:8]) != segmentMagic {
		return segmentHeader{}, fmt.Errorf("%w: bad magic %q", errBadHeader, b[0:8])
	}
	if crc32.Checksum(b[0:28], castagnoli) != binary.LittleEndian.Uint32(b[28:32]) {
		return segmentHeader{}, fmt.Errorf("%w: checksum mismatch", errBadHeader)
	}
	if v := binary.LittleEndian.Uint16(b[8:10]); v != formatVersion {
		return segmentHeader{}, fmt.Errorf("%w: version %d, this build reads %d", errBadHeader, v, formatVersion)
	}
	return segmentHeader{
		FirstLSN: binary.LittleEndian.Uint64(b[12:20]),
		Created:  int64(binary.LittleEndian.Uint64(b[20:28])),
	}, nil
}

// frameChecksum binds a payload to its length and to its LSN, so that a
// frame copied or left over from another position never verifies.
func frameChecksum(lsn uint64, payload []byte) uint32 {
	// The 12-byte prefix goes through the table by hand: handing a stack
	// array to crc32.Update makes it escape, one allocation per record.
	crc := ^uint32(0)
	for i := 0; i < 64; i += 8 {
		crc = castagnoli[byte(crc)^byte(lsn>>i)] ^ (crc >> 8)
	}
	for i, n := 0, uint32(len(payload)); i < 32; i += 8 {
		crc = castagnoli[byte(crc)^byte(n>>i)] ^ (crc >> 8)
	}
	return crc32.Update(^crc, castagnoli, payload)
}

// appendFrame appends the framed payload for lsn to dst.
func appendFrame(dst []byte, lsn uint64, payload []byte) []byte {
	var h [frameHeaderSize]byte
	binary.LittleEndian.PutUint32(h[0:4], uint32(len(payload)))
	binary.LittleEndian.PutUint32(h[4:8], frameChecksum(lsn, payload))
	dst = append(dst, h[:]...)
	return append(dst, payload...)
}

// frameFault says why the bytes at an offset are not a valid frame.
type frameFault uint8

const (
	faultNone     frameFault = iota
	faultZero                // an all-zero frame header: never-written space
	faultShort               // the frame runs past the end of the readable data
	faultLength              // length zero or above MaxRecordSize
	faultChecksum            // the checksum does not match
)

func (f frameFault) String() string {
	switch f {
	case faultZero:
		return "zero bytes"
	case faultShort:
		return "truncated frame"
	case faultLength:
		return "bad length"
	case faultChecksum:
		return "checksum mismatch"
	}
	return "ok"
}

// decodeFrame decodes the frame at the start of b, which must be the record
// numbered lsn. It returns the payload (aliasing b) and the frame's total size.
func decodeFrame(b []byte, lsn uint64) ([]byte, int, frameFault) {
	if len(b) < frameHeaderSize {
		if allZero(b) {
			return nil, 0, faultZero
		}
		return nil, 0, faultShort
	}
	n := binary.LittleEndian.Uint32(b[0:4])
	sum := binary.LittleEndian.Uint32(b[4:8])
	if n == 0 {
		if sum == 0 {
			return nil, 0, faultZero
		}
		return nil, 0, faultLength
	}
	if n > MaxRecordSize {
		return nil, 0, faultLength
	}
	end := frameHeaderSize + int(n)
	if len(b) < end {
		return nil, 0, faultShort
	}
	payload := b[frameHeaderSize:end]
	if frameChecksum(lsn, payload) != sum {
		return nil, 0, faultChecksum
	}
	return payload, end, faultNone
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// scanner iterates over the frames of one segment file through ReadAt, in
// large chunks, up to a limit that may grow (the active segment's durable end).
type scanner struct {
	r      io.ReaderAt
	limit  int64  // bytes of the file that may be read
	off    int64  // offset of the next frame
	lsn    uint64 // LSN of the next frame
	buf    []byte // file bytes [bufOff, bufOff+len(buf))
	bufOff int64
}

const scanChunk = 1 << 20

func newScanner(r io.ReaderAt, limit int64, off int64, lsn uint64) *scanner {
	return &scanner{r: r, limit: limit, off: off, lsn: lsn}
}

// frameError is a frame that failed to decode.
type frameError struct {
	Off   int64
	LSN   uint64
	Fault frameFault
}

func (e *frameError) Error() string {
	return fmt.Sprintf("wal: record %d at offset %d: %s", e.LSN, e.Off, e.Fault)
}

// next returns the next record's payload, valid until the following call.
// It returns io.EOF exactly at the limit and a *frameError for a bad frame,
// leaving the position at the bad frame.
func (s *scanner) next() ([]byte, error) {
	if s.off >= s.limit {
		return nil, io.EOF
	}
	b, err := s.window(frameHeaderSize)
	if err != nil {
		return nil, err
	}
	if len(b) >= frameHeaderSize {
		n := int64(binary.LittleEndian.Uint32(b[0:4]))
		need := frameHeaderSize + n
		if n <= MaxRecordSize && int64(len(b)) < need && need <= s.limit-s.off {
			if b, err = s.window(int(need)); err != nil {
				return nil, err
			}
		}
	}
	payload, n, fault := decodeFrame(b, s.lsn)
	if fault != faultNone {
		return nil, &frameError{Off: s.off, LSN: s.lsn, Fault: fault}
	}
	s.off += int64(n)
	s.lsn++
	return payload, nil
}

// window returns the buffered bytes from s.off up to the limit, reading so
// that at least want bytes are buffered when the limit and the file allow.
func (s *scanner) window(want int) ([]byte, error) {
	start := s.off - s.bufOff
	end := s.limit - s.bufOff
	if s.buf != nil && start >= 0 && start+int64(want) <= int64(len(s.buf)) {
		return s.buf[start:min(int64(len(s.buf)), end)], nil
	}
	n := min(int64(max(want, scanChunk)), s.limit-s.off)
	if int64(cap(s.buf)) < n {
		s.buf = make([]byte, n)
	}
	s.buf = s.buf[:n]
	m, err := s.r.ReadAt(s.buf, s.off)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("wal: read at offset %d: %w", s.off, err)
	}
	// A short read means the file ends before the limit; what is there is
	// all there is.
	s.buf = s.buf[:m]
	s.bufOff = s.off
	return s.buf, nil
}
