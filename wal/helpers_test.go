package wal_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/edged-io/edged/wal"
)

// startLog opens a log and runs its committer until the test ends.
func startLog(t testing.TB, opts wal.Options) *wal.Log {
	t.Helper()
	l, err := wal.Open(opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	runLog(t, l)
	return l
}

func runLog(t testing.TB, l *wal.Log) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("Run did not return")
		}
		l.Close()
	})
}

var payloads sync.Map // [2]int -> []byte

// payload is the deterministic content of record i (0-based) of the given
// size. Callers must not modify it.
func payload(i int, size int) []byte {
	if b, ok := payloads.Load([2]int{i, size}); ok {
		return b.([]byte)
	}
	b := make([]byte, size)
	s := fmt.Sprintf("rec-%08d|", i)
	for j := range b {
		b[j] = s[j%len(s)]
	}
	payloads.Store([2]int{i, size}, b)
	return b
}

type readResult struct {
	recs map[uint64][]byte
	lsns []uint64
	gaps []wal.GapError
}

// readAll reads the log from the start to its durable end.
func readAll(t testing.TB, l *wal.Log, from uint64) readResult {
	t.Helper()
	res := readResult{recs: map[uint64][]byte{}}
	r := l.NewReader(from)
	defer r.Close()
	for {
		rec, err := r.Next()
		var gap *wal.GapError
		switch {
		case err == nil:
			res.recs[rec.LSN] = append([]byte(nil), rec.Data...)
			res.lsns = append(res.lsns, rec.LSN)
		case errors.Is(err, io.EOF):
			return res
		case errors.As(err, &gap):
			res.gaps = append(res.gaps, *gap)
		default:
			t.Fatalf("Next: %v", err)
		}
	}
}

func mustAppend(t testing.TB, l *wal.Log, data []byte) uint64 {
	t.Helper()
	lsn, err := l.AppendSync(context.Background(), data)
	if err != nil {
		t.Fatalf("AppendSync: %v", err)
	}
	return lsn
}
