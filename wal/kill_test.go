package wal_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/edged-io/edged/wal"
	"go.uber.org/goleak"
)

// The kill -9 test re-executes this test binary as a writer process.
func TestMain(m *testing.M) {
	if dir := os.Getenv("EDGED_WAL_WRITER_DIR"); dir != "" {
		os.Exit(writerMain(dir, wal.SyncPolicy(os.Getenv("EDGED_WAL_WRITER_SYNC")), os.Getenv("EDGED_WAL_WRITER_TRIAL")))
	}
	goleak.VerifyTestMain(m) // every Run, Reader and committer goroutine has stopped
}

// writerMain appends from 8 goroutines and prints "<lsn> <payload>" for
// every record once it is durable, until it is killed.
func writerMain(dir string, policy wal.SyncPolicy, trial string) int {
	l, err := wal.Open(wal.Options{Dir: dir, Sync: policy, SegmentSize: 64 << 10})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	go l.Run(context.Background())
	out := bufio.NewWriter(os.Stdout)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := 0; ; i++ {
				data := fmt.Sprintf("t%s-w%d-%d-%s", trial, w, i, strings.Repeat("p", (w*13+i)%200))
				lsn, err := l.AppendSync(context.Background(), []byte(data))
				if err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(3)
				}
				mu.Lock()
				fmt.Fprintf(out, "%d %s\n", lsn, data)
				out.Flush()
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return 0
}

// TestKillDashNineWriter kills a real writer process at random moments and
// checks that every record it reported durable is recovered, in order,
// without gaps or duplicates, and that each appender's records keep their
// order.
func TestKillDashNineWriter(t *testing.T) {
	trials := 30
	if testing.Short() {
		trials = 6
	}
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(7, 7))
	policies := []wal.SyncPolicy{wal.SyncAlways, wal.SyncInterval, wal.SyncNever}
	acked := map[uint64]string{}
	for trial := range trials {
		policy := policies[trial%len(policies)]
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "EDGED_WAL_WRITER_DIR="+dir, "EDGED_WAL_WRITER_SYNC="+string(policy), fmt.Sprintf("EDGED_WAL_WRITER_TRIAL=%d", trial))
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := make(chan string, 1<<16)
		go func() {
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				lines <- sc.Text()
			}
			close(lines)
		}()
		time.Sleep(time.Duration(20+rng.IntN(150)) * time.Millisecond)
		// On a loaded machine the writer may not have started yet: kill it
		// once it has acknowledged something (a kill before proves nothing).
		var first []string
		select {
		case line, ok := <-lines:
			if ok {
				first = append(first, line)
			}
		case <-time.After(20 * time.Second):
		}
		cmd.Process.Signal(syscall.SIGKILL)
		n := 0
		for line := range chainLines(first, lines) {
			lsnStr, data, _ := strings.Cut(line, " ")
			lsn, err := strconv.ParseUint(lsnStr, 10, 64)
			if err != nil {
				t.Fatalf("trial %d: bad line %q", trial, line)
			}
			if prev, ok := acked[lsn]; ok && prev != data {
				t.Fatalf("trial %d: LSN %d acknowledged twice: %q and %q", trial, lsn, prev, data)
			}
			acked[lsn] = data
			n++
		}
		cmd.Wait()
		if n == 0 {
			t.Fatalf("trial %d (%s): the writer acknowledged nothing before the kill; stderr: %s", trial, policy, stderr.String())
		}

		l, err := wal.Open(wal.Options{Dir: dir})
		if err != nil {
			t.Fatalf("trial %d: Open after kill -9: %v", trial, err)
		}
		got := readAll(t, l, 1)
		l.Close()
		if len(got.gaps) != 0 {
			t.Fatalf("trial %d: gaps after kill -9: %+v", trial, got.gaps)
		}
		seen := map[string]bool{}
		nextIndex := map[string]int{} // per (trial, worker): the index its next record must have
		for i, lsn := range got.lsns {
			if lsn != uint64(i+1) {
				t.Fatalf("trial %d: LSNs not dense at %d: %d", trial, i, lsn)
			}
			data := string(got.recs[lsn])
			if seen[data] {
				t.Fatalf("trial %d: record %q twice", trial, data)
			}
			seen[data] = true
			parts := strings.SplitN(data, "-", 4)
			idx, err := strconv.Atoi(parts[2])
			if len(parts) < 3 || err != nil {
				t.Fatalf("trial %d: record %d is not one the writer wrote: %q", trial, lsn, data)
			}
			appender := parts[0] + "-" + parts[1]
			if idx != nextIndex[appender] {
				t.Fatalf("trial %d: appender %s: record %d follows %d", trial, appender, idx, nextIndex[appender]-1)
			}
			nextIndex[appender] = idx + 1
		}
		for lsn, data := range acked {
			if string(got.recs[lsn]) != data {
				t.Fatalf("trial %d (%s): acknowledged record %d %q lost (have %q)", trial, policy, lsn, data, got.recs[lsn])
			}
		}
	}
	t.Logf("%d trials, %d records acknowledged and recovered", trials, len(acked))
}

// chainLines yields first, then what remains on rest.
func chainLines(first []string, rest <-chan string) <-chan string {
	out := make(chan string, len(first)+1)
	go func() {
		defer close(out)
		for _, l := range first {
			out <- l
		}
		for l := range rest {
			out <- l
		}
	}()
	return out
}
