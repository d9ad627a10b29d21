package wal_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edged-io/edged/wal"
	"github.com/edged-io/edged/wal/waltest"
)

// buildLog writes n records of the given size into a fresh MemFS log with
// small segments and returns the file system after a clean close.
func buildLog(t *testing.T, n, size int, segSize int64) *waltest.MemFS {
	t.Helper()
	mem := waltest.NewMemFS()
	l := startLog(t, wal.Options{Dir: "/wal", FS: mem, Sync: wal.SyncNever, SegmentSize: segSize})
	for i := range n {
		mustAppend(t, l, payload(i, size))
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return mem
}

func lastSegment(t *testing.T, mem *waltest.MemFS) string {
	t.Helper()
	names, _ := mem.ReadDir("/wal")
	var last string
	for _, n := range names {
		if strings.HasSuffix(n, ".wal") {
			last = n
		}
	}
	return filepath.Join("/wal", last)
}

// checkPrefix asserts that the log holds exactly records 1..want, each equal
// to what was written, and that appending continues at want+1.
func checkPrefix(t *testing.T, mem *waltest.MemFS, want, size int, what string) *wal.Log {
	t.Helper()
	l, err := wal.Open(wal.Options{Dir: "/wal", FS: mem, Sync: wal.SyncNever})
	if err != nil {
		t.Fatalf("%s: Open refused to start: %v", what, err)
	}
	got := readAll(t, l, 1)
	if len(got.lsns) != want || len(got.gaps) != 0 {
		t.Fatalf("%s: recovered %d records and %d gaps, want %d and none", what, len(got.lsns), len(got.gaps), want)
	}
	for i := range want {
		if !bytes.Equal(got.recs[uint64(i+1)], payload(i, size)) {
			t.Fatalf("%s: record %d differs", what, i+1)
		}
	}
	runLog(t, l)
	if lsn := mustAppend(t, l, []byte("next")); lsn != uint64(want+1) {
		t.Fatalf("%s: next LSN %d, want %d", what, lsn, want+1)
	}
	// The record appended after recovery lands after the recovered ones.
	again, err := wal.OpenReadOnly(wal.Options{Dir: "/wal", FS: mem})
	if err != nil {
		t.Fatalf("%s: reopen: %v", what, err)
	}
	defer again.Close()
	if got := readAll(t, again, 1); len(got.lsns) != want+1 || string(got.recs[uint64(want+1)]) != "next" ||
		(want > 0 && !bytes.Equal(got.recs[1], payload(0, size))) {
		t.Fatalf("%s: after recovery and one append, the log reads %d records", what, len(got.lsns))
	}
	return l
}

// TestTruncationAtEveryOffsetOfTheLastThreeRecords cuts the active segment at
// every byte of its last three records: recovery keeps exactly the records
// that are whole and appends continue after them.
func TestTruncationAtEveryOffsetOfTheLastThreeRecords(t *testing.T) {
	for _, size := range []int{1, 37, 300, 5000} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			const n = 6
			base := buildLog(t, n, size, 1<<20)
			seg := lastSegment(t, base)
			full, _ := base.ReadFile(seg)
			frame := 8 + size
			start := len(full) - 3*frame
			for cut := start; cut < len(full); cut++ {
				mem := base.Snapshot()
				mem.WriteFile(seg, full[:cut])
				whole := n - 3 + (cut-start)/frame
				l := checkPrefix(t, mem, whole, size, fmt.Sprintf("cut at %d", cut))
				if st := l.Stats(); (cut-start)%frame != 0 && st.TornTruncations != 1 {
					t.Fatalf("cut at %d: torn truncation not counted: %+v", cut, st)
				}
			}
		})
	}
}

// TestEveryBitFlipInTheLastRecord: the damaged last record is dropped as a
// torn write (it was the last thing written), nothing else is touched, and
// no damaged record is ever returned.
func TestEveryBitFlipInTheLastRecord(t *testing.T) {
	const n, size = 10, 24
	base := buildLog(t, n, size, 1<<20)
	seg := lastSegment(t, base)
	full, _ := base.ReadFile(seg)
	frame := 8 + size
	for bit := (len(full) - frame) * 8; bit < len(full)*8; bit++ {
		mem := base.Snapshot()
		b := bytes.Clone(full)
		b[bit/8] ^= 1 << (bit % 8)
		mem.WriteFile(seg, b)
		checkPrefix(t, mem, n-1, size, fmt.Sprintf("flip of bit %d", bit))
	}
}

// TestGarbageAndZeroTails: junk after the last record is cut off (and kept
// aside unless it is all zeros); every record survives.
func TestGarbageAndZeroTails(t *testing.T) {
	const n, size = 50, 100
	base := buildLog(t, n, size, 1<<20)
	seg := lastSegment(t, base)
	full, _ := base.ReadFile(seg)
	rng := rand.New(rand.NewPCG(1, 2))
	tails := map[string][]byte{
		"zeros-short":  make([]byte, 3),
		"zeros-page":   make([]byte, 4096),
		"garbage-1":    {0xff},
		"garbage-page": randomBytes(rng, 4096),
		"huge-length":  {0xff, 0xff, 0xff, 0x7f, 1, 2, 3, 4, 5},
		"plausible":    append([]byte{10, 0, 0, 0, 1, 2, 3, 4}, make([]byte, 10)...),
	}
	for name, tail := range tails {
		t.Run(name, func(t *testing.T) {
			mem := base.Snapshot()
			mem.WriteFile(seg, append(bytes.Clone(full), tail...))
			checkPrefix(t, mem, n, size, name)
			kept := 0
			for _, f := range mem.Names() {
				if strings.Contains(f, "/quarantine/") && strings.Contains(f, ".torn-at-") {
					kept++
					got, _ := mem.ReadFile(f)
					if !bytes.Equal(got, bytes.TrimRight(tail, "\x00")) { // trailing zeros are not kept
						t.Fatalf("kept tail differs from the cut bytes")
					}
				}
			}
			if wantKept := !strings.HasPrefix(name, "zeros"); (kept == 1) != wantKept {
				t.Fatalf("kept %d torn tails, want kept=%v", kept, wantKept)
			}
		})
	}
}

func randomBytes(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// TestRandomFlipsInClosedSegments: a flipped bit anywhere in a closed
// segment (header included) is found, the segment is quarantined, every
// record that still verifies is returned, the lost ones are reported as an
// exact gap, and no damaged record is ever returned.
func TestRandomFlipsInClosedSegments(t *testing.T) {
	const n, size = 400, 50
	base := buildLog(t, n, size, 2048)
	names, _ := base.ReadDir("/wal")
	var segs []string
	for _, nm := range names {
		if strings.HasSuffix(nm, ".wal") {
			segs = append(segs, filepath.Join("/wal", nm))
		}
	}
	closed := segs[:len(segs)-1]
	rng := rand.New(rand.NewPCG(3, 4))
	for trial := range 300 {
		mem := base.Snapshot()
		victim := closed[rng.IntN(len(closed))]
		b, _ := mem.ReadFile(victim)
		bit := rng.IntN(len(b) * 8)
		b[bit/8] ^= 1 << (bit % 8)
		mem.WriteFile(victim, b)
		what := fmt.Sprintf("trial %d: bit %d of %s", trial, bit, filepath.Base(victim))

		l, err := wal.Open(wal.Options{Dir: "/wal", FS: mem})
		if err != nil {
			t.Fatalf("%s: Open: %v", what, err)
		}
		got := readAll(t, l, 1)
		var lost uint64
		for _, g := range got.gaps {
			lost += g.Count()
		}
		if uint64(len(got.lsns))+lost != n {
			t.Fatalf("%s: %d records + %d reported lost != %d", what, len(got.lsns), lost, n)
		}
		for lsn, data := range got.recs {
			if !bytes.Equal(data, payload(int(lsn-1), size)) {
				t.Fatalf("%s: record %d returned damaged", what, lsn)
			}
		}
		if st := l.Stats(); st.Quarantined != 1 { // a header flip loses no record but is noticed too
			t.Fatalf("%s: quarantined %d segments, want 1", what, st.Quarantined)
		}
		// Verify now finds a clean log, and a reopen reads the same.
		if rep, err := l.Verify(context.Background(), false); err != nil || len(rep.Corrupt) != 0 {
			t.Fatalf("%s: verify after salvage: %v %+v", what, err, rep.Corrupt)
		}
		l.Close()
		l2, err := wal.Open(wal.Options{Dir: "/wal", FS: mem})
		if err != nil {
			t.Fatal(err)
		}
		if again := readAll(t, l2, 1); len(again.lsns) != len(got.lsns) {
			t.Fatalf("%s: reopen reads %d records, first pass %d", what, len(again.lsns), len(got.lsns))
		}
		l2.Close()
	}
}

// TestCorruptionInsideTheActiveSegmentIsNotTruncated: a bad record followed
// by good ones in the last segment is corruption, not a torn write: the
// good records after it are kept.
func TestCorruptionInsideTheActiveSegmentIsNotTruncated(t *testing.T) {
	const n, size = 30, 40
	base := buildLog(t, n, size, 1<<20)
	seg := lastSegment(t, base)
	b, _ := base.ReadFile(seg)
	off := 32 + 10*(8+size) + 8 + 5 // inside record 11's payload
	b[off] ^= 0x10
	mem := base.Snapshot()
	mem.WriteFile(seg, b)
	l := startLog(t, wal.Options{Dir: "/wal", FS: mem})
	got := readAll(t, l, 1)
	if len(got.lsns) != n-1 || len(got.gaps) != 1 || got.gaps[0].From != 11 || got.gaps[0].To != 11 {
		t.Fatalf("got %d records, gaps %+v; want %d and a gap at 11", len(got.lsns), got.gaps, n-1)
	}
	if lsn := mustAppend(t, l, []byte("next")); lsn != n+1 {
		t.Fatalf("next LSN %d, want %d", lsn, n+1)
	}
}
