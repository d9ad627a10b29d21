package cli

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/edged-io/edged"
	"github.com/edged-io/edged/wal"
)

// walDir is where the daemon keeps its log inside the data directory.
func walDir(dataDir string) string { return filepath.Join(dataDir, "wal") }

func runWAL(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: wal needs a subcommand: verify, dump or stats", errUsage)
	}
	fs := newFlags("wal "+args[0], stdout)
	dataDir := fs.String("data-dir", "./data", "the daemon's data directory (the log is in DIR/wal)")
	switch args[0] {
	case "verify":
		if err := parse(fs, args[1:]); err != nil {
			return err
		}
		return walVerify(ctx, *dataDir, stdout)
	case "dump":
		from := fs.Uint64("from", 1, "first LSN to print")
		limit := fs.Uint64("limit", 0, "print at most this many records (0 = all)")
		if err := parse(fs, args[1:]); err != nil {
			return err
		}
		return walDump(*dataDir, *from, *limit, stdout)
	case "stats":
		asJSON := fs.Bool("json", false, "print JSON instead of a table")
		if err := parse(fs, args[1:]); err != nil {
			return err
		}
		return walStats(*dataDir, *asJSON, stdout)
	}
	return fmt.Errorf("%w: unknown wal subcommand %q (verify, dump, stats)", errUsage, args[0])
}

// openForInspection opens the log read-only: safe beside a running daemon.
func openForInspection(dataDir string) (*wal.Log, error) {
	dir := walDir(dataDir)
	if _, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("no write-ahead log at %s: %w", dir, err)
	}
	return wal.OpenReadOnly(wal.Options{Dir: dir})
}

func walVerify(ctx context.Context, dataDir string, out io.Writer) error {
	l, err := openForInspection(dataDir)
	if err != nil {
		return err
	}
	defer l.Close()
	rep, err := l.Verify(ctx, false)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "%d segments, %d records, %d bytes checked\n", rep.Segments, rep.Records, rep.Bytes)
	for _, c := range rep.Corrupt {
		fmt.Fprintf(out, "CORRUPT %s offset %d (record %d): %s\n", c.Segment, c.Offset, c.LSN, c.Reason)
	}
	if len(rep.Corrupt) > 0 {
		return &failure{fmt.Sprintf("%d corrupt segment(s); the daemon salvages them on its next start and keeps the originals in %s",
			len(rep.Corrupt), filepath.Join(walDir(dataDir), "quarantine"))}
	}
	fmt.Fprintln(out, "OK")
	return nil
}

type dumpLine struct {
	LSN      uint64          `json:"lsn,omitempty"`
	Size     int             `json:"size,omitempty"`
	Readings []dumpReading   `json:"readings,omitempty"`
	Tick     *time.Time      `json:"tick,omitempty"`
	JSON     json.RawMessage `json:"data,omitempty"`
	Text     *string         `json:"text,omitempty"`
	Base64   string          `json:"base64,omitempty"`
	Gap      *wal.GapError   `json:"gap,omitempty"`
	Corrupt  string          `json:"corrupt,omitempty"`
}

func walDump(dataDir string, from, limit uint64, out io.Writer) error {
	l, err := openForInspection(dataDir)
	if err != nil {
		return err
	}
	defer l.Close()
	r := l.NewReader(from)
	defer r.Close()
	enc := json.NewEncoder(out)
	var corrupt int
	for n := uint64(0); limit == 0 || n < limit; {
		rec, err := r.Next()
		var gap *wal.GapError
		var bad *wal.CorruptionError
		var line dumpLine
		switch {
		case errors.Is(err, io.EOF):
			if corrupt > 0 {
				return &failure{fmt.Sprintf("%d corrupt segment(s) skipped", corrupt)}
			}
			return nil
		case errors.As(err, &gap):
			line.Gap = gap
		case errors.As(err, &bad):
			line.Corrupt = bad.Error()
			corrupt++
		case err != nil:
			return err
		default:
			n++
			line.LSN, line.Size = rec.LSN, len(rec.Data)
			rs, rerr := edged.DecodeRecord(nil, rec.Data, rec.LSN)
			tick, terr := edged.DecodeTick(rec.Data)
			switch {
			case rerr == nil:
				for _, r := range rs {
					line.Readings = append(line.Readings, dumpReading{r.Device, r.Series, r.Value, r.Unit,
						time.Unix(0, r.Time).UTC(), time.Unix(0, r.Ingest).UTC(), flagNames(r.Flags)})
				}
			case terr == nil:
				t := time.Unix(0, tick).UTC()
				line.Tick = &t
			case json.Valid(rec.Data):
				line.JSON = rec.Data
			case utf8.Valid(rec.Data):
				s := string(rec.Data)
				line.Text = &s
			default:
				line.Base64 = base64.StdEncoding.EncodeToString(rec.Data)
			}
		}
		if err := enc.Encode(line); err != nil {
			return err
		}
	}
	return nil
}

type dumpReading struct {
	Device string    `json:"device"`
	Series string    `json:"series"`
	Value  float64   `json:"value"`
	Unit   string    `json:"unit,omitempty"`
	Time   time.Time `json:"time"`
	Ingest time.Time `json:"ingest"`
	Flags  []string  `json:"flags,omitempty"`
}

func flagNames(f edged.Flags) []string {
	var names []string
	for _, x := range []struct {
		f    edged.Flags
		name string
	}{{edged.TimeFromIngest, "time_from_ingest"}, {edged.ClockUnsynced, "clock_unsynced"}, {edged.TimeAbsurd, "time_absurd"}} {
		if f&x.f != 0 {
			names = append(names, x.name)
		}
	}
	return names
}

func walStats(dataDir string, asJSON bool, out io.Writer) error {
	l, err := openForInspection(dataDir)
	if err != nil {
		return err
	}
	defer l.Close()
	st := l.Stats()
	if asJSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(st)
	}
	fmt.Fprintf(out, "log %s: records %d..%d, %d segments, %d bytes\n", st.Dir, st.FirstLSN, st.LastLSN, len(st.Segments), st.Bytes)
	tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SEGMENT\tFIRST\tLAST\tBYTES\tMODIFIED\t")
	for _, s := range st.Segments {
		state := ""
		if s.Active {
			state = " (active)"
		}
		fmt.Fprintf(tw, "%s%s\t%d\t%d\t%d\t%s\t\n", filepath.Base(s.Path), state, s.FirstLSN, s.LastLSN, s.Bytes, s.ModTime.UTC().Format("2006-01-02T15:04:05Z"))
	}
	tw.Flush()
	names := make([]string, 0, len(st.Cursors))
	for n := range st.Cursors {
		names = append(names, n)
	}
	sort.Strings(names)
	if len(names) == 0 {
		fmt.Fprintln(out, "no consumer cursors")
	}
	for _, n := range names {
		fmt.Fprintf(out, "cursor %-12s at %d, lag %d records\n", n, st.Cursors[n], st.Lag[n])
	}
	return nil
}
