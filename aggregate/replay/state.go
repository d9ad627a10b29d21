package replay

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"slices"

	"github.com/edged-io/edged"
	"github.com/edged-io/edged/aggregate"
	"github.com/edged-io/edged/internal/binread"
)

// The sharded engine checkpoints in the aggregator's own format, so that
// the daemon can continue from a replay's checkpoint and a replay from the
// daemon's. The format (aggregate/checkpoint.go, version 1) is
//
//	magic | version | options | last LSN uvarint | series count uvarint
//	| series… (ascending device, series, unit) | CRC32C
//
// and each series is self-contained, so N shards' checkpoints merge into
// one by merging their sorted series, and one splits into N by hashing
// each series' key. This file walks the series without interpreting them;
// the byte layout it skips is the one documented in aggregate. Both
// directions are checked against a real aggregator in the tests, and
// UnmarshalBinary rejects anything malformed (checksum, order, values).

const (
	stateMagic   = "EDGEDAGG"
	stateVersion = 1
)

var (
	castagnoli = crc32.MakeTable(crc32.Castagnoli)
	errState   = errors.New("replay: aggregator checkpoint not understood")
)

// state is a checkpoint cut into its parts.
type state struct {
	header  []byte // magic, version and options
	lastLSN uint64
	series  [][]byte // each series' bytes, in order
	sizes   int
}

func splitState(b []byte) (*state, error) {
	if len(b) < len(stateMagic)+1+4 || string(b[:len(stateMagic)]) != stateMagic || b[len(stateMagic)] != stateVersion {
		return nil, fmt.Errorf("%w: magic or version", errState)
	}
	body := b[:len(b)-4]
	if crc32.Checksum(body, castagnoli) != binary.LittleEndian.Uint32(b[len(b)-4:]) {
		return nil, fmt.Errorf("%w: checksum", errState)
	}
	d := binread.New(body[len(stateMagic)+1:], errState)
	st := &state{}
	// Options: sizes, lateness, idle, quantiles, α, max future, min
	// time, max buckets, max pending.
	st.sizes = int(d.Uvarint())
	if st.sizes == 0 || st.sizes > 64 {
		return nil, fmt.Errorf("%w: %d window sizes", errState, st.sizes)
	}
	for range st.sizes {
		d.Uvarint()
	}
	d.Varint()
	d.Varint()
	nq := d.Uvarint()
	if nq > 64 {
		return nil, fmt.Errorf("%w: %d quantiles", errState, nq)
	}
	for range nq {
		d.Uint64()
	}
	d.Uint64()
	d.Uvarint()
	d.Varint()
	d.Uvarint()
	d.Uvarint()
	if d.Err() != nil {
		return nil, d.Err()
	}
	st.header = body[:len(body)-len(d.B)]
	st.lastLSN = d.Uvarint()
	n := d.Uvarint()
	if d.Err() == nil && n > uint64(len(d.B)) {
		d.Fail("series count %d", n)
	}
	for i := uint64(0); i < n && d.Err() == nil; i++ {
		rest := d.B
		skipSeries(d, st.sizes)
		st.series = append(st.series, rest[:len(rest)-len(d.B)])
	}
	if err := d.End(); err != nil {
		return nil, err
	}
	return st, nil
}

// join encodes a checkpoint of the given series, which must be in order.
func (st *state) join(series [][]byte) []byte {
	n := len(st.header) + binary.MaxVarintLen64*2 + 4
	for _, s := range series {
		n += len(s)
	}
	b := make([]byte, 0, n)
	b = append(b, st.header...)
	b = binary.AppendUvarint(b, st.lastLSN)
	b = binary.AppendUvarint(b, uint64(len(series)))
	for _, s := range series {
		b = append(b, s...)
	}
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

// seriesKey returns the key bytes of a series' encoding: its device,
// series and unit, each length-prefixed — the bytes a readings record
// holds for the same names, so both hash alike (Sharded.shardOf).
func seriesKey(s []byte) []byte {
	d := binread.New(s, errState)
	for range 3 {
		d.Bytes(edged.MaxStringLen)
	}
	return s[:len(s)-len(d.B)]
}

// compareKeys orders series as the aggregator does: by device, series,
// then unit (byte-wise).
func compareKeys(a, b []byte) int {
	da, db := binread.New(a, errState), binread.New(b, errState)
	for range 3 {
		if c := bytes.Compare(da.Bytes(edged.MaxStringLen), db.Bytes(edged.MaxStringLen)); c != 0 {
			return c
		}
	}
	return 0
}

func skipSeries(d *binread.Reader, sizes int) {
	for range 3 {
		d.Bytes(edged.MaxStringLen)
	}
	d.Byte()    // has watermark
	d.Varint()  // watermark
	d.Varint()  // frontier
	d.Varint()  // last ingest
	d.Uvarint() // accepted
	skipAccounting(d)
	ids := d.Uvarint()
	if d.Err() == nil && ids > uint64(len(d.B)) {
		d.Fail("remembered count %d", ids)
	}
	for i := uint64(0); i < ids && d.Err() == nil; i++ {
		if i == 0 {
			d.Varint()
		} else {
			d.Uvarint()
		}
		d.Uint64()
	}
	for range sizes {
		open := d.Uvarint()
		if d.Err() == nil && open > uint64(len(d.B)) {
			d.Fail("window count %d", open)
		}
		for i := uint64(0); i < open && d.Err() == nil; i++ {
			skipCell(d)
		}
	}
	amends := d.Uvarint()
	if d.Err() == nil && amends > uint64(len(d.B)) {
		d.Fail("amendment count %d", amends)
	}
	for i := uint64(0); i < amends && d.Err() == nil; i++ {
		d.Byte()
		d.Varint()
		skipAccounting(d)
	}
}

func skipCell(d *binread.Reader) {
	d.Varint()  // start
	d.Uvarint() // count
	d.Uvarint() // sum: first nonzero word
	words := d.Uvarint()
	if d.Err() == nil && words > uint64(len(d.B))/8 {
		d.Fail("sum of %d words", words)
	}
	for i := uint64(0); i < words && d.Err() == nil; i++ {
		d.Uint64()
	}
	d.Uint64() // min
	d.Uint64() // max
	d.Varint() // first
	d.Uint64()
	d.Varint() // last
	d.Uint64()
	d.Uvarint() // zeros
	for range 2 {
		n := d.Uvarint()
		if d.Err() == nil && n > uint64(len(d.B)) {
			d.Fail("store of %d buckets", n)
		}
		if n > 0 {
			d.Varint()
			for i := uint64(0); i < n && d.Err() == nil; i++ {
				d.Uvarint()
			}
		}
	}
	d.Byte() // collapsed
	skipAccounting(d)
	skipAccounting(d)
}

func skipAccounting(d *binread.Reader) {
	for range 5 {
		d.Uvarint()
	}
}

// mergeStates merges shard checkpoints (same options, disjoint series)
// into one, with lastLSN the engine's.
func mergeStates(parts [][]byte, lastLSN uint64) ([]byte, error) {
	var (
		head   *state
		series [][]byte
	)
	for _, p := range parts {
		st, err := splitState(p)
		if err != nil {
			return nil, err
		}
		if head == nil {
			head = st
		} else if !bytes.Equal(head.header, st.header) {
			return nil, fmt.Errorf("%w: shards disagree on options", errState)
		}
		series = append(series, st.series...)
	}
	slices.SortFunc(series, func(a, b []byte) int { return compareKeys(seriesKey(a), seriesKey(b)) })
	for i := 1; i < len(series); i++ {
		if compareKeys(seriesKey(series[i-1]), seriesKey(series[i])) == 0 {
			return nil, fmt.Errorf("%w: a series in two shards", errState)
		}
	}
	head.lastLSN = lastLSN
	return head.join(series), nil
}

// splitStates cuts a checkpoint into n, each series going to the shard
// shardOf gives its key.
func splitStates(b []byte, n int, shardOf func([]byte) int) ([][]byte, uint64, error) {
	st, err := splitState(b)
	if err != nil {
		return nil, 0, err
	}
	parts := make([][][]byte, n)
	for _, s := range st.series {
		k := shardOf(seriesKey(s))
		parts[k] = append(parts[k], s)
	}
	out := make([][]byte, n)
	for i := range parts {
		out[i] = st.join(parts[i])
	}
	return out, st.lastLSN, nil
}

// checkStateFormat verifies that this build's aggregator checkpoints in
// the format this file walks: an empty aggregator's checkpoint must split
// and join back to the same bytes.
func checkStateFormat(o aggregate.Options) error {
	a, err := aggregate.New(o)
	if err != nil {
		return err
	}
	b, err := a.MarshalBinary()
	if err != nil {
		return err
	}
	st, err := splitState(b)
	if err != nil {
		return err
	}
	if !bytes.Equal(st.join(st.series), b) {
		return fmt.Errorf("%w: round trip differs", errState)
	}
	return nil
}
