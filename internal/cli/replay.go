package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/edged-io/edged/aggregate/replay"
	"github.com/edged-io/edged/aggregate/stream"
	"github.com/edged-io/edged/aggregate/view"
	"github.com/edged-io/edged/alerts"
	"github.com/edged-io/edged/internal/config"
	"github.com/edged-io/edged/internal/daemon"
)

const replayUsage = `Usage: edged replay -c NEW_CONFIG [--view V] [flags]

Recomputes the windows of the local write-ahead log with NEW_CONFIG's
aggregate settings (windows, lateness, idle_after, quantiles) into the view
version V (DATA/views/V), beside the views the daemon keeps writing. It
opens the log read-only: it works with the daemon running or stopped and
never changes the log. Interrupted (Ctrl-C), it checkpoints; the same
command resumes where it stopped.

  --from/--to take an LSN, an RFC 3339 time, a date, or -DURATION (ago).
  A time selects records by their ingest time; windows that start before
  where a bounded replay starts are left out (they may lack readings).

Flags:
`

func runReplay(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("replay", stderr)
	fs.Usage = func() { fmt.Fprint(stderr, replayUsage); fs.PrintDefaults() }
	path := fs.String("c", "", "the new config (required): its aggregate section defines the windows")
	version := fs.String("view", "", "the view version to compute (default: NEW_CONFIG's aggregate.view)")
	dataDir := fs.String("data-dir", "", "the daemon's data directory (default: NEW_CONFIG's data_dir)")
	from := fs.String("from", "", "start at this LSN or ingest time (default: the start of the log)")
	to := fs.String("to", "", "stop after this LSN, or before the first record ingested at or after this time")
	follow := fs.Bool("follow", false, "keep following the log's live tail until interrupted (catch-up mode)")
	activate := fs.Bool("activate", false, "make the version the active view once caught up, then exit")
	report := fs.String("alerts-report", "", "also run NEW_CONFIG's alert rules and write their transitions to this file (JSON lines); nothing is published")
	workers := fs.Int("workers", 0, "aggregators in parallel, series sharded across them (default: the number of CPUs; 1 with --alerts-report)")
	every := fs.Duration("progress", 2*time.Second, "progress line interval on stderr (0: none)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *path == "" {
		return fmt.Errorf("%w: replay needs -c NEW_CONFIG", errUsage)
	}
	cfg, err := config.Load(*path)
	if err != nil {
		return err
	}
	if *dataDir == "" {
		*dataDir = cfg.DataDir
	}
	if *version == "" {
		*version = cfg.Aggregate.View
	}
	now := time.Now()
	var o replay.Options
	if o.From, err = replay.ParseBound(*from, now); err != nil {
		return fmt.Errorf("%w: --from: %v", errUsage, err)
	}
	if o.To, err = replay.ParseBound(*to, now); err != nil {
		return fmt.Errorf("%w: --to: %v", errUsage, err)
	}
	o.DataDir, o.Version, o.Aggregate = *dataDir, *version, daemon.AggregateOptions(cfg)
	o.Follow, o.Activate, o.Workers = *follow, *activate, *workers
	if err := o.Validate(); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	var unstored []string
	for _, q := range cfg.Aggregate.Quantiles {
		if name := fmt.Sprintf("p%g", q*100); view.FieldIndex(name) < 0 {
			unstored = append(unstored, name)
		}
	}
	if len(unstored) > 0 {
		fmt.Fprintf(stderr, "edged replay: note: %s computed (alert rules can use them) but the view store keeps only p50, p95 and p99\n",
			strings.Join(unstored, ", "))
	}

	var rep *replay.AlertReport
	if *report != "" {
		if len(cfg.Alerts.Rules) == 0 {
			return fmt.Errorf("%w: --alerts-report: %s has no alert rules", errUsage, *path)
		}
		eng, err := alerts.New(cfg.Alerts.Rules, alerts.Options{})
		if err != nil {
			return err
		}
		through, _ := stream.CheckpointLSN(replay.Layout{DataDir: o.DataDir}.Checkpoints(o.Version))
		if rep, err = replay.OpenAlertReport(*report, eng, through); err != nil {
			return err
		}
		o.Observer = rep
	}
	if *every > 0 {
		o.ProgressEvery = *every
		o.Progress = func(p replay.Progress) {
			if !p.Done {
				fmt.Fprintln(stderr, progressLine(p))
			}
		}
	}
	r, err := replay.New(o)
	if err != nil {
		return err
	}
	root := replay.Layout{DataDir: o.DataDir}.Views()
	if live, _ := view.Live(root); live != "" {
		if h, ok := view.Holder(root, live); ok && strings.HasPrefix(h, "edged run") {
			// Yield the CPU to the daemon's ingest.
			if err := renice(10); err == nil {
				fmt.Fprintf(stderr, "edged replay: the daemon is running (%s): replaying at nice 10\n", h)
			}
		}
	}
	runErr := r.Run(ctx)
	if rep != nil {
		if err := rep.Close(); err != nil && runErr == nil {
			runErr = err
		}
	}
	if runErr != nil {
		if errors.Is(runErr, view.ErrLocked) {
			return fmt.Errorf("%w (the daemon writes its aggregate.view; replay into another version)", runErr)
		}
		return runErr
	}
	s := r.Summary()
	fmt.Fprintln(stdout, summaryLine(s, rep))
	switch {
	case s.Activated:
		fmt.Fprintf(stdout, "%s is now the active view: /api/v1/query reads it\n", s.Version)
	case s.Interrupted && !o.Follow:
		return &failure{fmt.Sprintf("interrupted at LSN %d; run the same command to resume", s.ThroughLSN)}
	}
	return nil
}

func progressLine(p replay.Progress) string {
	var b strings.Builder
	fmt.Fprintf(&b, "replay %s: ", p.Version)
	if p.CaughtUp {
		fmt.Fprintf(&b, "following the log, LSN %d, lag %d records", p.Position, p.Lag)
	} else {
		fmt.Fprintf(&b, "%5.1f%%  LSN %d of %d", 100*p.Fraction, p.Position, p.End)
	}
	fmt.Fprintf(&b, " | %s readings/s, %s records/s | %d windows", si(p.ReadingsPerSec), si(p.RecordsPerSec), p.Windows)
	if !p.CaughtUp && p.ETA > 0 {
		fmt.Fprintf(&b, " | ETA %s", p.ETA.Round(time.Second))
	}
	return b.String()
}

func summaryLine(s replay.Summary, rep *replay.AlertReport) string {
	var b strings.Builder
	rate := 0.0
	if secs := s.Elapsed.Seconds(); secs > 0 {
		rate = float64(s.Readings) / secs
	}
	verb := "replayed"
	if s.Resumed {
		verb = "resumed and replayed"
	}
	fmt.Fprintf(&b, "replay %s: %s LSN %d..%d: %d records, %d readings in %s (%s readings/s, %d workers); %d windows, %d amendments",
		s.Version, verb, s.StartLSN, s.ThroughLSN, s.Records, s.Readings, s.Elapsed.Round(time.Millisecond), si(rate), s.Workers,
		s.Windows, s.Amendments)
	if s.Excluded > 0 {
		fmt.Fprintf(&b, "; %d left out (starting before %s, where the replay began)", s.Excluded,
			time.Unix(0, s.ExcludeBefore).UTC().Format(time.RFC3339))
	}
	if s.Gaps > 0 {
		fmt.Fprintf(&b, "; %d records missing from the log", s.Gaps)
	}
	if s.BadRecords > 0 {
		fmt.Fprintf(&b, "; %d records undecodable", s.BadRecords)
	}
	if rep != nil {
		fmt.Fprintf(&b, "; %d alert transitions reported", rep.Events())
	}
	switch {
	case s.Interrupted && !s.CaughtUp:
		b.WriteString("; interrupted")
	case s.Interrupted:
		b.WriteString("; stopped, caught up")
	case s.CaughtUp:
		b.WriteString("; caught up")
	}
	return b.String()
}

// si formats a rate with a k/M suffix.
func si(x float64) string {
	switch {
	case x >= 1e6:
		return fmt.Sprintf("%.2fM", x/1e6)
	case x >= 1e3:
		return fmt.Sprintf("%.1fk", x/1e3)
	}
	return fmt.Sprintf("%.0f", x)
}

// renice sets the nice value of every thread of the process (Linux
// keeps one per thread; threads started later inherit it).
func renice(n int) error {
	tids, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return err
	}
	for _, t := range tids {
		if tid, err := strconv.Atoi(t.Name()); err == nil {
			if err := syscall.Setpriority(syscall.PRIO_PROCESS, tid, n); err != nil {
				return err
			}
		}
	}
	return nil
}

// parseInterleaved parses flags that may come before, between or after
// positional arguments, and returns the positional ones.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, fmt.Errorf("%w: %s: %v", errUsage, fs.Name(), err)
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = slices.Clone(fs.Args()[1:])
	}
}
