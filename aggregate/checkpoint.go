package aggregate

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"math"
)

// A checkpoint is laid out as (little-endian; varints as in encoding/binary):
//
//	magic "EDGEDAGG" | version u8 = 1 | options | last LSN uvarint
//	| series count uvarint | series… (ascending device, series, unit) | CRC32C u32 of all before it
//
//	options: window count uvarint, sizes uvarint ns… | lateness varint (−1: none)
//	         | idle varint (−1: never) | quantile count uvarint, q u64 bits…
//	         | α u64 bits | max future uvarint | min time varint | max buckets uvarint
//	         | max pending uvarint
//	series:  device str | series str | unit str | has-watermark u8 | watermark varint
//	         | frontier varint | last ingest varint | accepted uvarint | accounting
//	         | remembered count uvarint, (time varint then deltas uvarint, value u64)…
//	         | per window size: open count uvarint, window…
//	         | amendment count uvarint, (size index u8, start varint, accounting)…
//	window:  start varint | count uvarint | sum | min u64 | max u64
//	         | first time varint, value u64 | last time varint, value u64
//	         | zero count uvarint | positive store | negative store | collapsed u8
//	         | accounting (merged into larger windows) | accounting (this window's own)
//	sum:     first nonzero word uvarint | word count uvarint | words u64… (higher words
//	         repeat the sign of the last)
//	store:   bucket count uvarint | (first index varint | counts uvarint…) if count > 0
//	accounting: invalid, untrusted, late, duplicates, conflicts uvarints
//	str:     length uvarint | bytes
//
// The bytes are a function of the state alone: two aggregators fed the same
// records checkpoint identically.

const (
	checkpointMagic   = "EDGEDAGG"
	checkpointVersion = 1
)

var (
	// ErrCheckpoint reports bytes that are not a checkpoint this version
	// can load.
	ErrCheckpoint = errors.New("aggregate: bad checkpoint")
	// ErrCheckpointOptions reports a checkpoint taken with other options
	// than the aggregator's: its views must be recomputed by replay.
	ErrCheckpointOptions = errors.New("aggregate: checkpoint taken with other options")
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// MarshalBinary returns the aggregator's whole state: a checkpoint that
// UnmarshalBinary restores. Take it between records; it covers the log up
// to LastLSN.
func (a *Aggregator) MarshalBinary() ([]byte, error) { return a.AppendBinary(nil) }

// AppendBinary appends the checkpoint to b.
func (a *Aggregator) AppendBinary(b []byte) ([]byte, error) {
	start := len(b)
	b = append(b, checkpointMagic...)
	b = append(b, checkpointVersion)
	b = appendOptions(b, &a.opts)
	b = binary.AppendUvarint(b, a.lastLSN)
	b = binary.AppendUvarint(b, uint64(len(a.list)))
	for _, s := range a.list {
		b = a.appendSeries(b, s)
	}
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b[start:], castagnoli)), nil
}

func appendOptions(b []byte, o *Options) []byte {
	b = binary.AppendUvarint(b, uint64(len(o.Windows)))
	for _, w := range o.Windows {
		b = binary.AppendUvarint(b, uint64(w))
	}
	b = binary.AppendVarint(b, int64(o.Lateness))
	b = binary.AppendVarint(b, int64(o.IdleAfter))
	b = binary.AppendUvarint(b, uint64(len(o.Quantiles)))
	for _, q := range o.Quantiles {
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(q))
	}
	b = binary.LittleEndian.AppendUint64(b, math.Float64bits(o.RelativeAccuracy))
	b = binary.AppendUvarint(b, uint64(o.MaxFuture))
	b = binary.AppendVarint(b, o.MinTime.UnixNano())
	b = binary.AppendUvarint(b, uint64(o.MaxBuckets))
	return binary.AppendUvarint(b, uint64(o.MaxPending))
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendBool(b []byte, v bool) []byte {
	if v {
		return append(b, 1)
	}
	return append(b, 0)
}

func appendFloat(b []byte, f float64) []byte {
	return binary.LittleEndian.AppendUint64(b, math.Float64bits(f))
}

func appendAccounting(b []byte, a *Accounting) []byte {
	for _, v := range [...]uint64{a.Invalid, a.Untrusted, a.Late, a.Duplicates, a.Conflicts} {
		b = binary.AppendUvarint(b, v)
	}
	return b
}

func (a *Aggregator) appendSeries(b []byte, s *series) []byte {
	b = appendString(b, s.device)
	b = appendString(b, s.name)
	b = appendString(b, s.unit)
	b = appendBool(b, s.hasWM)
	b = binary.AppendVarint(b, s.wm)
	b = binary.AppendVarint(b, s.frontier)
	b = binary.AppendVarint(b, s.lastIngest)
	b = binary.AppendUvarint(b, s.accepted)
	b = appendAccounting(b, &s.acct)
	ids := s.ids[s.idHead:]
	b = binary.AppendUvarint(b, uint64(len(ids)))
	for i, id := range ids {
		if i == 0 {
			b = binary.AppendVarint(b, id.t)
		} else {
			b = binary.AppendUvarint(b, uint64(id.t-ids[i-1].t))
		}
		b = appendFloat(b, id.v)
	}
	for _, cs := range s.cells {
		b = binary.AppendUvarint(b, uint64(len(cs)))
		for _, c := range cs {
			b = appendCell(b, c)
		}
	}
	b = binary.AppendUvarint(b, uint64(len(s.amends)))
	for _, am := range s.amends {
		b = append(b, am.size)
		b = binary.AppendVarint(b, am.start)
		b = appendAccounting(b, &am.acct)
	}
	return b
}

func appendCell(b []byte, c *cell) []byte {
	b = binary.AppendVarint(b, c.start)
	b = binary.AppendUvarint(b, c.count)
	b = appendSum(b, &c.sum)
	b = appendFloat(b, c.min)
	b = appendFloat(b, c.max)
	b = binary.AppendVarint(b, c.first.Time)
	b = appendFloat(b, c.first.Value)
	b = binary.AppendVarint(b, c.last.Time)
	b = appendFloat(b, c.last.Value)
	b = binary.AppendUvarint(b, c.sk.zero)
	b = appendStore(b, &c.sk.pos)
	b = appendStore(b, &c.sk.neg)
	b = appendBool(b, c.sk.collapsed)
	b = appendAccounting(b, &c.acct)
	return appendAccounting(b, &c.absorbed)
}

func appendSum(b []byte, v *exactSum) []byte {
	lo := 0
	for lo < accWords && v[lo] == 0 {
		lo++
	}
	if lo == accWords {
		return append(b, 0, 0)
	}
	ext := uint64(0)
	if v[accWords-1]>>63 != 0 {
		ext = math.MaxUint64
	}
	hi := accWords
	for hi-1 > lo && v[hi-1] == ext && v[hi-2]>>63 == ext>>63 {
		hi--
	}
	b = binary.AppendUvarint(b, uint64(lo))
	b = binary.AppendUvarint(b, uint64(hi-lo))
	for _, w := range v[lo:hi] {
		b = binary.LittleEndian.AppendUint64(b, w)
	}
	return b
}

func appendStore(b []byte, st *store) []byte {
	b = binary.AppendUvarint(b, uint64(len(st.counts)))
	if len(st.counts) == 0 {
		return b
	}
	b = binary.AppendVarint(b, int64(st.off))
	for _, c := range st.counts {
		b = binary.AppendUvarint(b, c)
	}
	return b
}
