package reconcile

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"
)

// Exit codes of Main (and of edged-reconcile).
const (
	ExitOK         = 0 // done; no drift
	ExitDrift      = 1 // done, and some window is in drift (see the report)
	ExitUsage      = 2 // bad command line, configuration or token file; unknown device
	ExitStore      = 3 // InfluxDB unreachable, or a query or write failed
	ExitIncomplete = 4 // stopped early by SIGTERM/SIGINT or --timeout; the next run continues
)

// Version is set at build time with -ldflags "-X ...reconcile.Version=v1.2.3".
var Version = ""

func version() string {
	if Version != "" {
		return Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "devel"
}

const usage = `edged-reconcile — central batch layer and serving query for edged devices

Usage:
  edged-reconcile run   [flags]   reconcile the complete windows of every device
  edged-reconcile query [flags]   serve one series: exact where reconciled, edge estimate otherwise
  edged-reconcile version         print the version

Connection (both commands; flags override --config):
  --config FILE        YAML configuration (see configs/reconcile.yaml)
  --url URL            InfluxDB base URL
  --org ORG            InfluxDB 2 organization ("" for 1.8)
  --bucket BUCKET      bucket, or database/retention-policy on InfluxDB 1.8
  --token-file FILE    file holding the token; default $EDGED_RECONCILE_TOKEN_FILE,
                       else $CREDENTIALS_DIRECTORY/influx-token (systemd LoadCredential=).
                       A token is never taken on the command line.
  --http-timeout DUR   per request (default 2m)

Exit codes: 0 ok, 1 drift found, 2 usage/configuration error, 3 InfluxDB unreachable or
a query/write failed, 4 stopped early (signal or --timeout; rerun to continue).

Run 'edged-reconcile run -h' or 'edged-reconcile query -h' for the other flags.
`

// errUsage marks a command-line or configuration error (exit 2).
var errUsage = errors.New("usage")

// Main runs the command line args (without the program name) and returns
// the exit code. ctx is cancelled by SIGTERM/SIGINT in cmd/edged-reconcile:
// a run then stops between windows and returns ExitIncomplete.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return ExitUsage
	}
	var code int
	var err error
	switch args[0] {
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return ExitOK
	case "version", "--version":
		fmt.Fprintf(stdout, "edged-reconcile %s\n", version())
		return ExitOK
	case "run":
		code, err = cmdRun(ctx, args[1:], stdout, stderr)
	case "query":
		code, err = cmdQuery(ctx, args[1:], stdout)
	default:
		fmt.Fprintf(stderr, "edged-reconcile: unknown command %q\n\n%s", args[0], usage)
		return ExitUsage
	}
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return ExitOK
		}
		fmt.Fprintf(stderr, "edged-reconcile: %v\n", err)
	}
	return code
}

// exitCode maps an error of Run or Query to an exit code.
func exitCode(err error) int {
	switch {
	case err == nil:
		return ExitOK
	case errors.Is(err, errUsage), errors.Is(err, ErrOptions), errors.Is(err, ErrConfig), errors.Is(err, ErrUnknownDevice):
		return ExitUsage
	case isStoreError(err):
		return ExitStore
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return ExitIncomplete
	}
	return ExitStore
}

// common are the connection flags.
type common struct {
	config, url, org, bucket, tokenFile string
	httpTimeout                         time.Duration
}

func (c *common) register(fs *flag.FlagSet) {
	fs.StringVar(&c.config, "config", "", "YAML configuration file")
	fs.StringVar(&c.url, "url", "", "InfluxDB base URL")
	fs.StringVar(&c.org, "org", "", "InfluxDB 2 organization")
	fs.StringVar(&c.bucket, "bucket", "", "bucket (database/retention-policy on 1.8)")
	fs.StringVar(&c.tokenFile, "token-file", "", "file holding the InfluxDB token")
	fs.DurationVar(&c.httpTimeout, "http-timeout", 0, "timeout of each request (default 2m)")
}

// parse parses args, refusing a token on the command line.
func parse(fs *flag.FlagSet, args []string) error {
	for _, a := range args {
		name := strings.TrimLeft(a, "-")
		if strings.HasPrefix(a, "-") && (name == "token" || strings.HasPrefix(name, "token=")) {
			return fmt.Errorf("%w: a token is never taken on the command line (it would show in ps and "+
				"shell history): use --token-file FILE, $EDGED_RECONCILE_TOKEN_FILE or the systemd credential influx-token", errUsage)
		}
		if a == "--" {
			break
		}
	}
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	return nil
}

// options builds the connection options: config file, then flags set.
func (c *common) options(fs *flag.FlagSet) (Options, *Config, error) {
	cfg := &Config{}
	if c.config != "" {
		var err error
		if cfg, err = LoadConfig(c.config); err != nil {
			return Options{}, nil, err
		}
	}
	o := Options{URL: cfg.Influx.URL, Org: cfg.Influx.Org, Bucket: cfg.Influx.Bucket, HTTPTimeout: time.Duration(cfg.Influx.Timeout)}
	tokenFile := cfg.Influx.TokenFile
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "url":
			o.URL = c.url
		case "org":
			o.Org = c.org
		case "bucket":
			o.Bucket = c.bucket
		case "token-file":
			tokenFile = c.tokenFile
		case "http-timeout":
			o.HTTPTimeout = c.httpTimeout
		}
	})
	tok, err := readToken(tokenFile)
	if err != nil {
		return Options{}, nil, err
	}
	o.Token = tok
	return o, cfg, nil
}

// readToken reads the token from file, $EDGED_RECONCILE_TOKEN_FILE or the
// systemd credential; no file configured means no token (InfluxDB 1.8
// without authentication). The token itself never appears in an error.
func readToken(file string) (string, error) {
	explicit := file != ""
	if file == "" {
		file = os.Getenv("EDGED_RECONCILE_TOKEN_FILE")
		explicit = file != ""
	}
	if file == "" {
		if dir := os.Getenv("CREDENTIALS_DIRECTORY"); dir != "" {
			file = filepath.Join(dir, "influx-token")
		}
	}
	if file == "" {
		return "", nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		if !explicit && errors.Is(err, os.ErrNotExist) {
			return "", nil // a systemd credential directory without our credential
		}
		return "", fmt.Errorf("%w: token file: %v", errUsage, err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" || strings.ContainsAny(tok, "\r\n") {
		return "", fmt.Errorf("%w: token file %s must hold the token on one line", errUsage, file)
	}
	return tok, nil
}

// listFlag is a repeatable, comma-separated flag.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error {
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			*l = append(*l, v)
		}
	}
	return nil
}

const runUsage = `Usage: edged-reconcile run [flags]

Reconciles, for every device (or --device), the edge windows that are complete in the
central store and changed since the previous run; writes edged_batch and
edged_reconciliation; prints a summary table (or the JSON report with --json).

  --device D[,D…]   only these devices (repeatable)
  --view V          only this view tag (default: all)
  --parallel N      devices at once (default 4)
  --since DUR       leave out windows that started more than DUR ago (default: none)
  --full            recompute every window, not only changed ones (writes only changes)
  --dry-run         compute and report, write nothing
  --timeout DUR     stop cleanly after DUR (exit 4; the next run continues)
  --report FILE     write the JSON report to FILE
  --json            print the JSON report instead of the summary table
  --progress DUR    progress line on stderr every DUR (default 5s, 0 off)
  --verbose         log progress details to stderr (warnings always go there)
`

func cmdRun(ctx context.Context, args []string, stdout, stderr io.Writer) (int, error) {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	var c common
	c.register(fs)
	var devices listFlag
	fs.Var(&devices, "device", "")
	view := fs.String("view", "", "")
	parallel := fs.Int("parallel", 0, "")
	since := fs.Duration("since", 0, "")
	full := fs.Bool("full", false, "")
	dry := fs.Bool("dry-run", false, "")
	timeout := fs.Duration("timeout", 0, "")
	reportFile := fs.String("report", "", "")
	asJSON := fs.Bool("json", false, "")
	progress := fs.Duration("progress", 5*time.Second, "")
	verbose := fs.Bool("verbose", false, "")
	fs.Usage = func() {}
	if err := parse(fs, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, runUsage)
		}
		return ExitUsage, err
	}
	o, cfg, err := c.options(fs)
	if err != nil {
		return exitCode(err), err
	}
	rc := cfg.Run
	o.Devices, o.View, o.Parallel = rc.Devices, rc.View, rc.Parallel
	o.Since, o.ChunkSpan = time.Duration(rc.Since), time.Duration(rc.ChunkSpan)
	runTimeout, report, every := time.Duration(rc.Timeout), rc.Report, *progress
	if rc.Progress != nil {
		every = time.Duration(*rc.Progress)
	}
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "device":
			o.Devices = devices
		case "view":
			o.View = *view
		case "parallel":
			o.Parallel = *parallel
		case "since":
			o.Since = *since
		case "timeout":
			runTimeout = *timeout
		case "report":
			report = *reportFile
		case "progress":
			every = *progress
		}
	})
	o.Full, o.DryRun = *full, *dry
	if every > 0 {
		o.Progress, o.ProgressEvery = stderr, every
	}
	level := slog.LevelWarn // retries and rescans
	if *verbose {
		level = slog.LevelInfo
	}
	o.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	if runTimeout < 0 || *parallel < 0 {
		return ExitUsage, fmt.Errorf("%w: negative --timeout or --parallel", errUsage)
	}
	j, err := New(o)
	if err != nil {
		return ExitUsage, err
	}
	defer j.Close()
	if runTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, runTimeout)
		defer cancel()
	}
	rep, runErr := j.Run(ctx)
	if report != "" {
		if err := writeJSONFile(report, rep); err != nil {
			fmt.Fprintf(stderr, "edged-reconcile: %v\n", err)
			if runErr == nil {
				return ExitUsage, nil
			}
		}
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return ExitStore, err
		}
	} else if runErr == nil || len(rep.Devices) > 0 {
		_ = rep.WriteSummary(stdout)
	}
	if runErr != nil {
		return exitCode(runErr), runErr
	}
	if rep.Total.Drift > 0 {
		return ExitDrift, fmt.Errorf("%d windows in drift", rep.Total.Drift)
	}
	return ExitOK, nil
}

// writeJSONFile writes v atomically (temporary file, rename).
func writeJSONFile(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	return nil
}

const queryUsage = `Usage: edged-reconcile query --device D --series S --window 1m --from T --to T [flags]

Prints one row per window whose start is in [from, to): the exact aggregates where
the batch view has the window (source batch), the edge estimate otherwise (source edge).

  --view V     view tag (default v1)
  --from T     RFC 3339 time, or relative to now: -1h, now
  --to T       likewise (default now)
  --json       JSON array instead of a table
`

func cmdQuery(ctx context.Context, args []string, stdout io.Writer) (int, error) {
	fs := flag.NewFlagSet("query", flag.ContinueOnError)
	var c common
	c.register(fs)
	device := fs.String("device", "", "")
	series := fs.String("series", "", "")
	window := fs.String("window", "", "")
	view := fs.String("view", "v1", "")
	from := fs.String("from", "", "")
	to := fs.String("to", "now", "")
	asJSON := fs.Bool("json", false, "")
	fs.Usage = func() {}
	if err := parse(fs, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, queryUsage)
		}
		return ExitUsage, err
	}
	if *device == "" || *series == "" || *window == "" || *from == "" {
		return ExitUsage, fmt.Errorf("%w: query needs --device, --series, --window and --from", errUsage)
	}
	size, err := ParseSize(*window)
	if err != nil {
		return ExitUsage, fmt.Errorf("%w: --window: %v", errUsage, err)
	}
	now := time.Now()
	t0, err := parseTime(*from, now)
	if err != nil {
		return ExitUsage, fmt.Errorf("%w: --from: %v", errUsage, err)
	}
	t1, err := parseTime(*to, now)
	if err != nil {
		return ExitUsage, fmt.Errorf("%w: --to: %v", errUsage, err)
	}
	o, _, err := c.options(fs)
	if err != nil {
		return exitCode(err), err
	}
	j, err := New(o)
	if err != nil {
		return ExitUsage, err
	}
	defer j.Close()
	rows, err := j.Query(ctx, QueryRequest{Device: *device, Series: *series, Window: size, View: *view, From: t0, To: t1})
	if err != nil {
		return exitCode(err), err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return ExitOK, enc.Encode(rows)
	}
	return ExitOK, WriteRows(stdout, rows)
}

// parseTime accepts RFC 3339, "now", or a duration relative to now ("-1h").
func parseTime(s string, now time.Time) (time.Time, error) {
	if s == "now" {
		return now, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		return now.Add(d), nil
	}
	return time.Time{}, fmt.Errorf("%q is neither an RFC 3339 time nor a duration such as -1h", s)
}
