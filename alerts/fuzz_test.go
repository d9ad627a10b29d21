package alerts

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"math/rand/v2"
	"slices"
	"testing"
)

func fuzzInputs() []input { return genInputs(rand.New(rand.NewPCG(7, 7)), 300) }

// checkpointSeeds are checkpoints of propRules at several points of a
// stream, so that mutations meet realistic state.
func checkpointSeeds(f *testing.F) {
	ins := fuzzInputs()
	for _, cut := range []int{0, 10, 60, 150, len(ins)} {
		e := mustNew(f, propRules, Options{})
		feed(e, ins[:cut], nil)
		b, _ := e.MarshalBinary()
		f.Add(b)
	}
	f.Add([]byte(checkpointMagic))
	f.Add([]byte{})
}

// FuzzUnmarshalBinary: arbitrary bytes never panic; what is accepted can be
// fed more input and round-trips byte for byte. Each input is tried as is
// and with a valid checksum appended, so that mutations get past the CRC.
func FuzzUnmarshalBinary(f *testing.F) {
	checkpointSeeds(f)
	more := fuzzInputs()[150:]
	f.Fuzz(func(t *testing.T, b []byte) {
		fixed := binary.LittleEndian.AppendUint32(slices.Clone(b), crc32.Checksum(b, castagnoli))
		for _, in := range [][]byte{b, fixed} {
			e := mustNew(t, propRules, Options{})
			before, _ := e.MarshalBinary()
			if err := e.UnmarshalBinary(in); err != nil {
				if !errors.Is(err, ErrCheckpoint) && !errors.Is(err, ErrCheckpointRules) {
					t.Fatalf("error %v wraps neither ErrCheckpoint nor ErrCheckpointRules", err)
				}
				if after, _ := e.MarshalBinary(); !slices.Equal(before, after) {
					t.Fatal("a refused checkpoint changed the engine")
				}
				continue
			}
			e.Alerts()
			e.Counts()
			feed(e, more, func(Event) {})
			b1, _ := e.MarshalBinary()
			r := mustNew(t, propRules, Options{})
			if err := r.UnmarshalBinary(b1); err != nil {
				t.Fatalf("own checkpoint refused: %v", err)
			}
			if b2, _ := r.MarshalBinary(); !slices.Equal(b1, b2) {
				t.Fatal("checkpoint does not round-trip")
			}
		}
	})
}

// TestCheckpointRules: a checkpoint is refused by an engine with other
// rules or options, with ErrCheckpointRules, but not for other severities
// or labels, which only decorate events.
func TestCheckpointRules(t *testing.T) {
	e := mustNew(t, propRules, Options{})
	feed(e, fuzzInputs(), nil)
	b, _ := e.MarshalBinary()

	other := slices.Clone(propRules)
	other[0].Above = f(26)
	for _, n := range []*Engine{mustNew(t, other, Options{}), mustNew(t, propRules[1:], Options{}), mustNew(t, propRules, Options{ClockStep: -1})} {
		if err := n.UnmarshalBinary(b); !errors.Is(err, ErrCheckpointRules) {
			t.Fatalf("UnmarshalBinary with other rules: %v", err)
		}
	}
	relabeled := slices.Clone(propRules)
	relabeled[0].Severity, relabeled[0].Labels = "critical", map[string]string{"a": "b"}
	n := mustNew(t, relabeled, Options{})
	if err := n.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	for _, a := range n.Alerts() {
		if a.Rule == "hot" && (a.Severity != "critical" || a.Labels["a"] != "b") {
			t.Fatalf("alert %+v does not have the new severity and labels", a)
		}
	}

	b[len(b)/2] ^= 1
	if err := n.UnmarshalBinary(b); !errors.Is(err, ErrCheckpoint) {
		t.Fatalf("corrupt checkpoint: %v", err)
	}
}
