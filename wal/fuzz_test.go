package wal

import (
	"bytes"
	"testing"
)

// FuzzDecodeFrame: arbitrary bytes never panic the decoder, and whatever
// decodes re-encodes to the same bytes.
func FuzzDecodeFrame(f *testing.F) {
	f.Add(appendFrame(nil, 1, []byte("hello")), uint64(1))
	f.Add(appendFrame(nil, 42, bytes.Repeat([]byte{0}, 100)), uint64(42))
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0}, uint64(1))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4}, uint64(7))
	f.Add([]byte{5, 0, 0}, uint64(3))
	f.Fuzz(func(t *testing.T, b []byte, lsn uint64) {
		payload, n, fault := decodeFrame(b, lsn)
		if fault != faultNone {
			if payload != nil || n != 0 {
				t.Fatalf("fault %v with payload", fault)
			}
			return
		}
		if n > len(b) || len(payload) == 0 || len(payload) > MaxRecordSize {
			t.Fatalf("decoded %d bytes, payload %d, from %d", n, len(payload), len(b))
		}
		if again := appendFrame(nil, lsn, payload); !bytes.Equal(again, b[:n]) {
			t.Fatalf("re-encoding differs")
		}
	})
}

// FuzzRoundTrip: any sequence of non-empty payloads encodes and scans back
// identically, and a scanner never reads past its limit.
func FuzzRoundTrip(f *testing.F) {
	f.Add([]byte("a"), []byte("bc"), []byte("def"), uint64(1))
	f.Add(bytes.Repeat([]byte{0}, 300), []byte{1}, bytes.Repeat([]byte{0xff}, 4096), uint64(1<<40))
	f.Fuzz(func(t *testing.T, a, b, c []byte, first uint64) {
		var recs [][]byte
		for _, p := range [][]byte{a, b, c} {
			if len(p) > 0 {
				recs = append(recs, p)
			}
		}
		buf := segmentHeader{FirstLSN: first}.encode()
		for i, p := range recs {
			buf = appendFrame(buf, first+uint64(i), p)
		}
		h, err := decodeHeader(buf)
		if err != nil || h.FirstLSN != first {
			t.Fatalf("header round trip: %v %d", err, h.FirstLSN)
		}
		sc := newScanner(bytes.NewReader(buf), int64(len(buf)), headerSize, first)
		for i, want := range recs {
			got, err := sc.next()
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("record %d: %v", i, err)
			}
		}
		if _, err := sc.next(); err == nil || sc.off != int64(len(buf)) {
			t.Fatalf("scanner went past the end: off %d of %d", sc.off, len(buf))
		}
	})
}
