// Package cli implements the edged command line: it parses subcommands and
// flags and calls into the packages that do the work. cmd/edged only sets
// up signals and exits with the code Main returns.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"runtime/debug"
)

// Exit codes.
const (
	ExitOK      = 0
	ExitFailure = 1 // the command ran and found a problem (e.g. corruption)
	ExitUsage   = 2 // bad command line
)

// Version is set at build time with -ldflags "-X ...cli.Version=v1.2.3".
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

const usage = `edged — edge IoT sensor aggregation

Usage:
  edged run [-c FILE]              run the daemon (no -c: embedded defaults)
  edged check -c FILE [--print]    validate a config file (errors name file:line)
  edged wal verify --data-dir DIR  check every segment's checksums (read-only)
  edged wal dump   --data-dir DIR  print records as JSON lines (read-only)
  edged wal stats  --data-dir DIR  show segments, cursors and lag (read-only)
  edged replay -c NEW_CONFIG [--view V] [--from X] [--to X] [--follow] [--activate]
               [--alerts-report FILE] [--workers N]
                                   recompute the views from the log with a new config
                                   into view version V, beside the running daemon
  edged views list|activate V|delete V|diff A B [--data-dir DIR]
                                   list, switch, delete and compare view versions
  edged version                    print the version

Run 'edged COMMAND -h' for a command's flags.
`

// errUsage marks a command-line error: Main prints usage and exits 2.
var errUsage = errors.New("usage")

// Main runs the command line args and returns the process exit code.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return ExitUsage
	}
	var err error
	switch args[0] {
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return ExitOK
	case "version", "--version":
		fmt.Fprintf(stdout, "edged %s\n", version())
		return ExitOK
	case "run":
		err = runDaemon(ctx, args[1:], stdout, stderr)
	case "check":
		err = runCheck(args[1:], stdout)
	case "wal":
		err = runWAL(ctx, args[1:], stdout)
	case "replay":
		err = runReplay(ctx, args[1:], stdout, stderr)
	case "views":
		err = runViews(args[1:], stdout, stderr)
	default:
		fmt.Fprintf(stderr, "edged: unknown command %q\n\n%s", args[0], usage)
		return ExitUsage
	}
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return ExitOK
	case errors.Is(err, errUsage):
		fmt.Fprintf(stderr, "edged: %v\n", err)
		return ExitUsage
	default:
		fmt.Fprintf(stderr, "edged: %v\n", err)
		return ExitFailure
	}
}

// failure is a finding, not a malfunction: the command worked and what it
// found is bad (corruption). It exits 1 like any error.
type failure struct{ msg string }

func (f *failure) Error() string { return f.msg }

func newFlags(name string, out io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(out)
	return fs
}

func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %s: %v", errUsage, fs.Name(), err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: %s: unexpected argument %q", errUsage, fs.Name(), fs.Arg(0))
	}
	return nil
}
