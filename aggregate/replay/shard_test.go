package replay

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"testing"

	"github.com/edged-io/edged"
	"github.com/edged-io/edged/aggregate"
	"github.com/edged-io/edged/aggregate/stream"
)

// event is what an engine did with one record, or a checkpoint taken.
type event struct {
	lsn   uint64
	err   bool
	wins  []aggregate.Window
	state []byte
}

// feed applies recs (LSN i+1) to e, draining and checkpointing every
// `every` records, and returns the windows in emission order, which
// records failed, and the checkpoints.
func feed(t *testing.T, e stream.Engine, recs [][]byte, from, every int) (wins []aggregate.Window, errs []uint64, states [][]byte) {
	t.Helper()
	emit := func(w aggregate.Window) { wins = append(wins, w) }
	for i := from; i < len(recs); i++ {
		lsn := uint64(i + 1)
		if err := e.ApplyEach(recs[i], lsn, emit, nil); err != nil {
			errs = append(errs, lsn)
		}
		if (i+1)%every == 0 || i == len(recs)-1 {
			if d, ok := e.(interface{ Drain(func(aggregate.Window)) }); ok {
				d.Drain(emit)
			}
			b, err := e.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			states = append(states, b)
		}
	}
	return wins, errs, states
}

func TestShardedEmitsWhatOneAggregatorEmits(t *testing.T) {
	recs := history{series: 40, seconds: 700, seed: 1, twoUnits: true, absurd: true}.records()
	o := testOptions()
	single, err := aggregate.New(o)
	if err != nil {
		t.Fatal(err)
	}
	want, wantErrs, wantStates := feed(t, single, recs, 0, 997)
	var amended, overflow int
	for _, w := range want {
		if w.Amended {
			amended++
		}
	}
	for i := 1; i < len(want); i++ {
		if want[i].Amended && want[i-1].Amended && want[i].CloseLSN == want[i-1].CloseLSN && edged.Kind(recs[want[i].CloseLSN-1]) == edged.KindReadings {
			overflow++
		}
	}
	if len(want) < 1000 || amended == 0 || overflow == 0 || len(wantErrs) != 3 {
		t.Fatalf("the history proves little: %d windows, %d amendments, %d overflowing, %d bad records", len(want), amended, overflow, len(wantErrs))
	}
	for _, n := range []int{2, 3, 7} {
		t.Run(fmt.Sprintf("shards=%d", n), func(t *testing.T) {
			e, err := NewSharded(o, n)
			if err != nil {
				t.Fatal(err)
			}
			defer e.Close()
			got, gotErrs, gotStates := feed(t, e, recs, 0, 997)
			if !reflect.DeepEqual(gotErrs, wantErrs) {
				t.Fatalf("records refused: %v, want %v", gotErrs, wantErrs)
			}
			compareWindows(t, got, want)
			if len(gotStates) != len(wantStates) {
				t.Fatalf("%d checkpoints, want %d", len(gotStates), len(wantStates))
			}
			for i := range wantStates {
				if !bytes.Equal(gotStates[i], wantStates[i]) {
					t.Fatalf("checkpoint %d differs from the single aggregator's (%d vs %d bytes)", i, len(gotStates[i]), len(wantStates[i]))
				}
			}
		})
	}
}

func compareWindows(t *testing.T, got, want []aggregate.Window) {
	t.Helper()
	for i := range min(len(got), len(want)) {
		if !reflect.DeepEqual(got[i], want[i]) {
			t.Fatalf("window %d:\n got %+v\nwant %+v", i, got[i], want[i])
		}
	}
	if len(got) != len(want) {
		t.Fatalf("%d windows, want %d", len(got), len(want))
	}
}

// TestShardedAndSingleContinueFromEachOther: a checkpoint of either
// restores into the other, and the continuation is the same.
func TestShardedAndSingleContinueFromEachOther(t *testing.T) {
	recs := history{series: 25, seconds: 400, seed: 2, twoUnits: true, absurd: true}.records()
	o := testOptions()
	cut := len(recs) / 2
	full, err := aggregate.New(o)
	if err != nil {
		t.Fatal(err)
	}
	_, _, states := feed(t, full, recs[:cut], 0, cut)
	mid := states[len(states)-1]
	wantTail, _, wantStates := feed(t, full, recs, cut, len(recs))

	// single checkpoint → sharded
	e, err := NewSharded(o, 3)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if err := e.UnmarshalBinary(mid); err != nil {
		t.Fatal(err)
	}
	if err := e.ApplyEach(recs[cut-1], uint64(cut), nil, nil); !errors.Is(err, aggregate.ErrAlreadyApplied) {
		t.Fatalf("a record before the checkpoint: %v", err)
	}
	got, _, gotStates := feed(t, e, recs, cut, len(recs))
	compareWindows(t, got, wantTail)
	if !bytes.Equal(gotStates[0], wantStates[0]) {
		t.Fatal("final checkpoints differ")
	}

	// sharded checkpoint → single
	e2, err := NewSharded(o, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer e2.Close()
	_, _, st2 := feed(t, e2, recs[:cut], 0, cut)
	if !bytes.Equal(st2[len(st2)-1], mid) {
		t.Fatal("the sharded checkpoint differs from the single one")
	}
	single, _ := aggregate.New(o)
	if err := single.UnmarshalBinary(st2[len(st2)-1]); err != nil {
		t.Fatal(err)
	}
	got, _, _ = feed(t, single, recs, cut, len(recs))
	compareWindows(t, got, wantTail)
}

// FuzzSplitAgreesWithTheDecoder: the router refuses exactly the readings
// records edged.DecodeRecord refuses, and routes every reading.
func FuzzSplitAgreesWithTheDecoder(f *testing.F) {
	f.Add(mustRecord([]edged.Reading{{Device: "a", Series: "b", Unit: "c", Value: 1, Time: 5, Ingest: 6}}))
	f.Add(mustRecord([]edged.Reading{{Device: "a", Series: "b"}, {Device: "x", Series: "y", Unit: "°C", Time: -1 << 60}}))
	f.Add([]byte{1, 0})
	f.Add([]byte{1, 1, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1})
	e, err := NewSharded(testOptions(), 3)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if edged.Kind(b) != edged.KindReadings {
			return
		}
		rs, derr := edged.DecodeRecord(nil, b, 1)
		spans, serr := e.split(b)
		if (derr == nil) != (serr == nil) {
			t.Fatalf("decoder: %v, router: %v", derr, serr)
		}
		if derr == nil && len(spans) != len(rs) {
			t.Fatalf("router found %d readings, decoder %d", len(spans), len(rs))
		}
	})
}
