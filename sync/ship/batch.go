package ship

import (
	"strings"
	"time"
)

// reject is a line the server refused, or that could not be sent at all,
// with the reason.
type reject struct {
	line, reason string
	sent         bool // refused by the server (else before sending)
}

// batch is the points of one write, built from records of both logs, with
// what confirming it settles: the records it covers (the cursors move to
// readingsTo and estimatesTo) and the highest through mark among them.
type batch struct {
	buf     []byte // line protocol; each point ends with '\n'
	ends    []int  // ends[i] is the offset just past point i
	rejects []reject

	readingsTo, estimatesTo uint64 // last LSN covered (0: none)
	through                 uint64 // highest through mark covered
	records                 int
	started                 time.Time
	// Ingest times of the first and last reading (0: none).
	firstIngest, lastIngest int64

	readings, untrusted, windows, gaps uint64
	gapRecords                         uint64

	// progress: the batch carries the progress point sentProgress.
	progress     bool
	sentProgress progress
}

// refuse moves the point being written at buf[start:] to the rejects.
func (b *batch) refuse(start int, reason string) {
	b.rejects = append(b.rejects, reject{line: strings.TrimSuffix(string(b.buf[start:]), "\n"), reason: reason})
	b.buf = b.buf[:start]
}

func (b *batch) points() int { return len(b.ends) }

// span returns points lo..hi-1.
func (b *batch) span(lo, hi int) []byte {
	start := 0
	if lo > 0 {
		start = b.ends[lo-1]
	}
	return b.buf[start:b.ends[hi-1]]
}

// reset empties the batch, keeping its buffers.
func (b *batch) reset() {
	*b = batch{buf: b.buf[:0], ends: b.ends[:0]}
}

// noteReading records a reading's ingest time for the lag.
func (b *batch) noteReading(ingest int64) {
	if b.firstIngest == 0 {
		b.firstIngest = ingest
	}
	b.lastIngest = ingest
}
