package wal_test

import (
	"bytes"
	"testing"

	"github.com/edged-io/edged/wal"
	"github.com/edged-io/edged/wal/waltest"
)

// FuzzOpenSegment: Open never refuses to start and never panics whatever
// bytes the last segment holds, never returns a damaged record, and the log
// accepts appends afterwards.
func FuzzOpenSegment(f *testing.F) {
	good := buildSegment(f)
	f.Add(good)
	f.Add(good[:len(good)-3])
	f.Add(append(bytes.Clone(good), 0, 0, 0, 0))
	f.Add([]byte{})
	f.Add(good[:20])
	flipped := bytes.Clone(good)
	flipped[40] ^= 4
	f.Add(flipped)
	f.Fuzz(func(t *testing.T, seg []byte) {
		mem := waltest.NewMemFS()
		mem.MkdirAll("/wal", 0o750)
		mem.WriteFile("/wal/00000000000000000001.wal", seg)
		l, err := wal.Open(wal.Options{Dir: "/wal", FS: mem})
		if err != nil {
			t.Fatalf("Open refused to start: %v", err)
		}
		got := readAll(t, l, 1)
		for lsn, data := range got.recs {
			if !bytes.Equal(data, payload(int(lsn-1), 20+int(lsn-1)*3)) {
				t.Fatalf("record %d is damaged: %q", lsn, data)
			}
		}
		runLog(t, l)
		lsn := mustAppend(t, l, []byte("after"))
		if lsn <= uint64(len(got.lsns)) {
			t.Fatalf("append after recovery reused LSN %d", lsn)
		}
	})
}

// buildSegment returns the bytes of a one-segment log of 8 records.
func buildSegment(f *testing.F) []byte {
	mem := waltest.NewMemFS()
	l := startLog(f, wal.Options{Dir: "/wal", FS: mem})
	for i := range 8 {
		mustAppend(f, l, payload(i, 20+i*3))
	}
	l.Close()
	b, err := mem.ReadFile("/wal/00000000000000000001.wal")
	if err != nil {
		f.Fatal(err)
	}
	return b
}
