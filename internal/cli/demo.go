package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/edged-io/edged/wal"
	"golang.org/x/sync/errgroup"
)

// runDemo is what `make run` starts until the daemon exists: it appends
// simulated readings to the write-ahead log at a fixed rate, follows the log
// with a live tail that keeps a cursor, and prints what both see.
func runDemo(ctx context.Context, args []string, out io.Writer) error {
	fs := newFlags("demo", out)
	dataDir := fs.String("data-dir", "./data", "data directory (the log is in DIR/wal)")
	series := fs.Int("series", 8, "number of simulated series")
	rate := fs.Float64("rate", 200, "readings per second, all series together")
	policy := fs.String("fsync", "interval", "fsync policy: always, interval or never")
	report := fs.Duration("report", 2*time.Second, "how often to print progress")
	duration := fs.Duration("duration", 0, "stop after this long (0 = until Ctrl-C)")
	seed := fs.Uint64("seed", 1, "seed of the simulated values")
	if err := parse(fs, args); err != nil {
		return err
	}
	sync, err := wal.ParseSyncPolicy(*policy)
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if *series < 1 || *rate <= 0 {
		return fmt.Errorf("%w: --series and --rate must be positive", errUsage)
	}
	if *duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}
	logger := slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{Level: slog.LevelInfo}))
	l, err := wal.Open(wal.Options{Dir: walDir(*dataDir), Sync: sync, RetentionBytes: 256 << 20, Logger: logger})
	if err != nil {
		return err
	}
	defer l.Close()
	st := l.Stats()
	fmt.Fprintf(out, "edged demo: log %s holds records %d..%d; appending %d series at %.0f readings/s (fsync=%s). Ctrl-C stops.\n",
		st.Dir, st.FirstLSN, st.LastLSN, *series, *rate, sync)

	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return l.Run(ctx) })
	var tailed atomic.Uint64
	var lastValue atomic.Value
	lastValue.Store(0.0)
	g.Go(func() error { return simulate(ctx, l, *series, *rate, *seed) })
	g.Go(func() error { return tail(ctx, l, &tailed, &lastValue) })
	g.Go(func() error {
		t := time.NewTicker(*report)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-t.C:
			}
			s := l.Stats()
			fmt.Fprintf(out, "durable through %d  segments %d  bytes %d  fsyncs %d  tail read %d (last %.2f)  cursor lag %d\n",
				s.DurableLSN, len(s.Segments), s.Bytes, s.Syncs, tailed.Load(), lastValue.Load(), s.Lag["demo"])
		}
	})
	err = g.Wait()
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		err = nil
	}
	return err
}

type demoReading struct {
	Series string  `json:"series"`
	Value  float64 `json:"value"`
	TimeNs int64   `json:"ts"`
}

// simulate appends deterministic readings (a daily-ish sine with seeded
// noise per series) at the given total rate.
func simulate(ctx context.Context, l *wal.Log, series int, rate float64, seed uint64) error {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	every := max(time.Duration(float64(time.Second)/rate), time.Millisecond)
	tick := time.NewTicker(every)
	defer tick.Stop()
	perTick := max(1, int(rate*every.Seconds()))
	for i := 0; ; {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		now := time.Now()
		for range perTick {
			s := i % series
			v := 20 + 5*math.Sin(2*math.Pi*float64(now.Unix()%600)/600+float64(s)) + rng.NormFloat64()*0.2
			b, _ := json.Marshal(demoReading{Series: fmt.Sprintf("sim/s%d", s), Value: math.Round(v*100) / 100, TimeNs: now.UnixNano()})
			if _, err := l.Append(b); err != nil {
				return err
			}
			i++
		}
	}
}

// tail follows the log from the demo cursor and advances it.
func tail(ctx context.Context, l *wal.Log, n *atomic.Uint64, value *atomic.Value) error {
	from, _ := l.Cursor("demo")
	last := from
	r := l.NewReader(from + 1)
	defer r.Close()
	for {
		rec, err := r.Next()
		var gap *wal.GapError
		switch {
		case errors.Is(err, io.EOF):
			if last > from {
				from = last
				if err := l.SetCursor("demo", last); err != nil {
					return err
				}
			}
			if err := r.Wait(ctx); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
			continue
		case errors.As(err, &gap):
			continue // the retention quota removed records the demo had not read
		case err != nil:
			return err
		}
		var rd demoReading
		if json.Unmarshal(rec.Data, &rd) == nil {
			value.Store(rd.Value)
		}
		n.Add(1)
		last = rec.LSN
	}
}
