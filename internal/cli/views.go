package cli

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/edged-io/edged/aggregate/replay"
	"github.com/edged-io/edged/aggregate/stream"
	"github.com/edged-io/edged/aggregate/view"
)

const viewsUsage = `Usage:
  edged views list     [--data-dir D] [--json]
  edged views activate V [--data-dir D]
  edged views delete   V [--data-dir D]
  edged views diff     A B [--data-dir D] [--device D] [--series GLOB] [--window W] [--from T] [--to T]
                       [--limit N] [--all-fields] [--json] [--exit-code]

The daemon writes one version of the views (aggregate.view, "live");
edged replay computes others. The active version is what the HTTP API
reads by default (DATA/views/ACTIVE; the live one when unset).
`

func runViews(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stdout, viewsUsage)
		if len(args) == 0 {
			return fmt.Errorf("%w: views needs a subcommand: list, activate, delete or diff", errUsage)
		}
		return nil
	}
	fs := newFlags("views "+args[0], stderr)
	dataDir := fs.String("data-dir", "./data", "the daemon's data directory (views in DIR/views)")
	asJSON := fs.Bool("json", false, "print JSON")
	var (
		device, series, window, from, to *string
		limit                            *int
		all, exitCode                    *bool
	)
	want := 0
	switch args[0] {
	case "list":
	case "activate", "delete":
		want = 1
	case "diff":
		want = 2
		device = fs.String("device", "", "only this device")
		series = fs.String("series", "", "only series matching this glob ('*' does not cross '/')")
		window = fs.String("window", "", "only this window size (default: every size either version has)")
		from = fs.String("from", "", "only windows starting at or after this time (RFC 3339 or unix seconds)")
		to = fs.String("to", "", "only windows starting before this time")
		limit = fs.Int("limit", 20, "changed windows listed in detail (0: all)")
		all = fs.Bool("all-fields", false, "also compare close_lsn and applied_lsn (they differ whenever the windows close elsewhere in the log)")
		exitCode = fs.Bool("exit-code", false, "exit 1 when the versions differ")
	default:
		return fmt.Errorf("%w: unknown views subcommand %q (list, activate, delete, diff)", errUsage, args[0])
	}
	pos, err := parseInterleaved(fs, args[1:])
	if err != nil {
		return err
	}
	if len(pos) != want {
		return fmt.Errorf("%w: views %s takes %d version name(s), got %d", errUsage, args[0], want, len(pos))
	}
	for _, v := range pos {
		if err := view.ValidVersion(v); err != nil {
			return fmt.Errorf("%w: %v", errUsage, err)
		}
	}
	lay := replay.Layout{DataDir: *dataDir}
	switch args[0] {
	case "list":
		return viewsList(lay, *asJSON, stdout)
	case "activate":
		return viewsActivate(lay, pos[0], stdout)
	case "delete":
		return viewsDelete(lay, pos[0], stdout)
	}
	f := diffFilter{device: *device, series: *series, limit: *limit, all: *all}
	if *window != "" {
		if f.size, err = time.ParseDuration(*window); err != nil {
			return fmt.Errorf("%w: --window %q is not a duration", errUsage, *window)
		}
	}
	f.from, f.to = math.MinInt64, math.MaxInt64
	for _, b := range []struct {
		s   string
		dst *int64
	}{{*from, &f.from}, {*to, &f.to}} {
		if b.s != "" {
			t, err := parseTimeArg(b.s)
			if err != nil {
				return fmt.Errorf("%w: %v", errUsage, err)
			}
			*b.dst = t.UnixNano()
		}
	}
	rep, err := viewsDiff(lay, pos[0], pos[1], f)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		rep.print(stdout, f.limit)
	}
	if *exitCode && rep.Differ() {
		return &failure{fmt.Sprintf("%s and %s differ", pos[0], pos[1])}
	}
	return nil
}

func parseTimeArg(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	var sec float64
	if _, err := fmt.Sscanf(s, "%g", &sec); err == nil {
		return time.Unix(0, int64(sec*1e9)), nil
	}
	return time.Time{}, fmt.Errorf("%q is neither RFC 3339 nor unix seconds", s)
}

// versionRow is one line of views list.
type versionRow struct {
	Name        string   `json:"name"`
	Active      bool     `json:"active"`
	Live        bool     `json:"live"`
	Writer      string   `json:"writer,omitempty"`
	Source      string   `json:"source,omitempty"`
	Fingerprint string   `json:"fingerprint,omitempty"`
	Windows     []string `json:"window_sizes"`
	Series      int      `json:"series"`
	Rows        int      `json:"windows"`
	Bytes       int64    `json:"bytes"`
	ThroughLSN  uint64   `json:"through_lsn"`
	Note        string   `json:"note,omitempty"`
}

func viewsList(lay replay.Layout, asJSON bool, out io.Writer) error {
	root := lay.Views()
	vs, err := view.Versions(root)
	if err != nil {
		return err
	}
	active, live := activeAndLive(root)
	explicit, _ := view.Active(root)
	rows := make([]versionRow, 0, len(vs))
	for _, v := range vs {
		r := versionRow{Name: v.Name, Active: v.Name == active, Live: v.Name == live, Writer: v.Holder, Series: v.Series, Bytes: v.Bytes}
		for _, s := range v.Sizes {
			r.Windows = append(r.Windows, s.String())
		}
		if m, err := replay.ReadManifest(root, v.Name); err == nil {
			r.Source, r.Fingerprint = m.Source, m.Fingerprint
			if m.Source == "replay" && !m.CaughtUp {
				r.Note = "replay not caught up"
			}
		}
		r.ThroughLSN, _ = stream.CheckpointLSN(lay.Checkpoints(v.Name))
		r.Rows, err = countWindows(root, v)
		if err != nil {
			r.Rows = -1
			r.Note = strings.TrimSpace(r.Note + " " + err.Error())
		}
		rows = append(rows, r)
	}
	if asJSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(rows)
	}
	if len(rows) == 0 {
		fmt.Fprintf(out, "no view versions in %s\n", root)
	}
	tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VERSION\tACTIVE\tLIVE\tSOURCE\tCONFIG\tWINDOW SIZES\tSERIES\tWINDOWS\tSIZE\tTHROUGH LSN\tWRITER\t")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%s\t%d\t%s\t\n", r.Name, mark(r.Active), mark(r.Live), cmp.Or(r.Source, "-"),
			cmp.Or(r.Fingerprint, "-"), strings.Join(r.Windows, ","), r.Series, r.Rows, bytesHuman(r.Bytes), r.ThroughLSN,
			strings.TrimSpace(r.Writer+" "+r.Note))
	}
	tw.Flush()
	if explicit == "" {
		fmt.Fprintln(out, "no version activated: the API reads the live one")
	}
	if _, err := os.Stat(filepath.Join(root, "series.json")); err == nil {
		fmt.Fprintf(out, "%s also holds views of an edged without versions: the daemon moves them to v1 when it starts\n", root)
	}
	return nil
}

// activeAndLive returns the active version (the live one when none is
// activated: what the API reads) and the live one.
func activeAndLive(root string) (string, string) {
	live, _ := view.Live(root)
	active, _ := view.Active(root)
	return cmp.Or(active, live), live
}

func mark(b bool) string {
	if b {
		return "*"
	}
	return ""
}

func bytesHuman(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// countWindows counts a version's windows, through a snapshot.
func countWindows(root string, v view.VersionInfo) (int, error) {
	snap, err := view.OpenSnapshot(root, v.Dir)
	if err != nil {
		return 0, err
	}
	defer snap.Close()
	n := 0
	for _, s := range snap.Series() {
		for _, size := range v.Sizes {
			rows, err := snap.Query(s.Device, s.Series, size, math.MinInt64, math.MaxInt64)
			if err != nil {
				return 0, err
			}
			n += len(rows)
		}
	}
	return n, nil
}

func viewsActivate(lay replay.Layout, v string, out io.Writer) error {
	root := lay.Views()
	if !view.Exists(root, v) {
		return fmt.Errorf("no view version %s in %s (see edged views list)", v, root)
	}
	if err := view.SetActive(root, v); err != nil {
		return err
	}
	fmt.Fprintf(out, "%s is the active view: /api/v1/query and /api/v1/series read it (?view= reads any version)\n", v)
	if h, ok := view.Holder(root, v); ok && !strings.HasPrefix(h, "edged run") {
		fmt.Fprintf(out, "note: %s is still being written by %s; the API shows what it has written so far\n", v, h)
	}
	if m, err := replay.ReadManifest(root, v); err == nil && m.Source == "replay" {
		if live, _ := view.Live(root); live != v {
			fmt.Fprintf(out, "to have the daemon continue it, set aggregate.view: %s (and the aggregate settings it was replayed with) and restart it\n", v)
		}
	}
	return nil
}

func viewsDelete(lay replay.Layout, v string, out io.Writer) error {
	root := lay.Views()
	if !view.Exists(root, v) {
		return fmt.Errorf("no view version %s in %s (see edged views list)", v, root)
	}
	active, live := activeAndLive(root)
	switch v {
	case active:
		return fmt.Errorf("%s is the active view: activate another version first (edged views activate …)", v)
	case live:
		return fmt.Errorf("%s is the version the daemon writes (aggregate.view): switch the daemon to another version first", v)
	}
	lock, err := view.LockVersion(root, v, "edged views delete")
	if err != nil {
		return err
	}
	defer lock.Unlock()
	if err := view.RemoveVersion(root, v); err != nil {
		return err
	}
	ck := lay.Checkpoints(v)
	if v == view.LegacyVersion {
		// v1's checkpoint directory also holds the other versions'.
		files, _ := filepath.Glob(filepath.Join(ck, "checkpoint*"))
		for _, f := range files {
			os.Remove(f)
		}
	} else if err := os.RemoveAll(ck); err != nil {
		return err
	}
	fmt.Fprintf(out, "deleted %s (its views and checkpoint)\n", v)
	return nil
}

type diffFilter struct {
	device, series string
	size           time.Duration
	from, to       int64
	limit          int
	all            bool
}

// diffReport is what views diff finds.
type diffReport struct {
	A          string                `json:"a"`
	B          string                `json:"b"`
	Compared   []string              `json:"compared_fields"`
	Series     []seriesDiff          `json:"series"`
	Fields     map[string]*fieldDiff `json:"fields"`
	Changed    []windowDiff          `json:"changed"`
	OnlyA      []windowRef           `json:"only_a"`
	OnlyB      []windowRef           `json:"only_b"`
	Same       int                   `json:"same"`
	NotCovered []string              `json:"sizes_in_one_version,omitempty"`
}

type seriesDiff struct {
	Device  string `json:"device"`
	Series  string `json:"series"`
	Window  string `json:"window"`
	A       int    `json:"windows_a"`
	B       int    `json:"windows_b"`
	Same    int    `json:"same"`
	Changed int    `json:"changed"`
	OnlyA   int    `json:"only_a"`
	OnlyB   int    `json:"only_b"`
}

type fieldDiff struct {
	Windows int     `json:"windows"`
	MaxAbs  float64 `json:"max_abs_delta"`
	MaxRel  float64 `json:"max_rel_delta"`
}

type windowRef struct {
	Device string    `json:"device"`
	Series string    `json:"series"`
	Window string    `json:"window"`
	Start  time.Time `json:"start"`
}

type windowDiff struct {
	windowRef
	Deltas map[string]fieldDelta `json:"deltas"`
}

type fieldDelta struct {
	A     *float64 `json:"a"`
	B     *float64 `json:"b"`
	Delta *float64 `json:"delta,omitempty"`
}

// Differ reports any difference.
func (r *diffReport) Differ() bool { return len(r.Changed)+len(r.OnlyA)+len(r.OnlyB) > 0 }

func viewsDiff(lay replay.Layout, a, b string, f diffFilter) (*diffReport, error) {
	root := lay.Views()
	snaps := make([]*view.Snapshot, 2)
	sizes := make([][]time.Duration, 2)
	for i, v := range []string{a, b} {
		if !view.Exists(root, v) {
			return nil, fmt.Errorf("no view version %s in %s (see edged views list)", v, root)
		}
		s, err := view.OpenSnapshot(root, view.VersionDir(root, v))
		if err != nil {
			return nil, err
		}
		defer s.Close()
		snaps[i] = s
		sizes[i], _ = view.Sizes(view.VersionDir(root, v))
	}
	rep := &diffReport{A: a, B: b, Fields: map[string]*fieldDiff{}}
	var compared []int
	for i, name := range view.Fields {
		if f.all || (name != "close_lsn" && name != "applied_lsn") {
			compared = append(compared, i)
			rep.Compared = append(rep.Compared, name)
		}
	}
	// Windows of a size only one version has cannot be compared: they are
	// counted, not listed.
	var all []time.Duration
	for _, size := range slices.Compact(slices.Sorted(slices.Values(append(slices.Clone(sizes[0]), sizes[1]...)))) {
		inA, inB := slices.Contains(sizes[0], size), slices.Contains(sizes[1], size)
		switch {
		case f.size != 0 && size != f.size:
		case inA && inB:
			all = append(all, size)
		default:
			rep.NotCovered = append(rep.NotCovered, fmt.Sprintf("%s windows only in %s", size, map[bool]string{true: a, false: b}[inA]))
		}
	}
	if f.size != 0 && !slices.Contains(sizes[0], f.size) && !slices.Contains(sizes[1], f.size) {
		return nil, fmt.Errorf("neither %s nor %s has %s windows", a, b, f.size)
	}
	type key struct{ device, series string }
	var keys []key
	seen := map[key]bool{}
	for _, s := range snaps {
		for _, info := range s.Series() {
			k := key{info.Device, info.Series}
			if seen[k] || (f.device != "" && info.Device != f.device) {
				continue
			}
			if f.series != "" {
				if ok, _ := path.Match(f.series, info.Series); !ok {
					continue
				}
			}
			seen[k] = true
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, func(x, y key) int { return cmp.Or(cmp.Compare(x.series, y.series), cmp.Compare(x.device, y.device)) })
	query := func(i int, k key, size time.Duration) ([]view.Row, error) {
		if !slices.Contains(sizes[i], size) {
			return nil, nil
		}
		return snaps[i].Query(k.device, k.series, size, f.from, f.to)
	}
	for _, k := range keys {
		for _, size := range all {
			ra, err := query(0, k, size)
			if err != nil {
				return nil, err
			}
			rb, err := query(1, k, size)
			if err != nil {
				return nil, err
			}
			if len(ra) == 0 && len(rb) == 0 {
				continue
			}
			sd := seriesDiff{Device: k.device, Series: k.series, Window: size.String(), A: len(ra), B: len(rb)}
			ref := func(start int64) windowRef {
				return windowRef{k.device, k.series, size.String(), time.Unix(0, start).UTC()}
			}
			i, j := 0, 0
			for i < len(ra) || j < len(rb) {
				switch {
				case j == len(rb) || (i < len(ra) && ra[i].Start < rb[j].Start):
					sd.OnlyA++
					rep.OnlyA = append(rep.OnlyA, ref(ra[i].Start))
					i++
				case i == len(ra) || rb[j].Start < ra[i].Start:
					sd.OnlyB++
					rep.OnlyB = append(rep.OnlyB, ref(rb[j].Start))
					j++
				default:
					wd := windowDiff{windowRef: ref(ra[i].Start), Deltas: map[string]fieldDelta{}}
					for _, fi := range compared {
						x, y := ra[i].Values[fi], rb[j].Values[fi]
						if math.Float64bits(x) == math.Float64bits(y) || (math.IsNaN(x) && math.IsNaN(y)) {
							continue
						}
						name := view.Fields[fi]
						d := fieldDelta{A: num(x), B: num(y)}
						fd := rep.Fields[name]
						if fd == nil {
							fd = &fieldDiff{}
							rep.Fields[name] = fd
						}
						fd.Windows++
						if !math.IsNaN(x) && !math.IsNaN(y) {
							delta := y - x
							d.Delta = &delta
							fd.MaxAbs = math.Max(fd.MaxAbs, math.Abs(delta))
							if x != 0 {
								fd.MaxRel = math.Max(fd.MaxRel, math.Abs(delta/x))
							}
						}
						wd.Deltas[name] = d
					}
					if len(wd.Deltas) > 0 {
						sd.Changed++
						rep.Changed = append(rep.Changed, wd)
					} else {
						sd.Same++
						rep.Same++
					}
					i++
					j++
				}
			}
			rep.Series = append(rep.Series, sd)
		}
	}
	return rep, nil
}

func num(x float64) *float64 {
	if math.IsNaN(x) {
		return nil
	}
	return &x
}

func (r *diffReport) print(out io.Writer, limit int) {
	fmt.Fprintf(out, "views diff %s → %s: %d windows the same, %d changed, %d only in %s, %d only in %s\n",
		r.A, r.B, r.Same, len(r.Changed), len(r.OnlyA), r.A, len(r.OnlyB), r.B)
	for _, n := range r.NotCovered {
		fmt.Fprintf(out, "  not compared: %s\n", n)
	}
	if !r.Differ() {
		return
	}
	tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "\nDEVICE\tSERIES\tWINDOW\t%s\t%s\tSAME\tCHANGED\tONLY %s\tONLY %s\t\n", r.A, r.B, r.A, r.B)
	for _, s := range r.Series {
		if s.Changed+s.OnlyA+s.OnlyB == 0 {
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t\n", s.Device, s.Series, s.Window, s.A, s.B, s.Same, s.Changed, s.OnlyA, s.OnlyB)
	}
	tw.Flush()
	if len(r.Fields) > 0 {
		fmt.Fprintln(out, "\nfields that changed:")
		names := slices.Sorted(func(yield func(string) bool) {
			for n := range r.Fields {
				if !yield(n) {
					return
				}
			}
		})
		slices.SortStableFunc(names, func(x, y string) int { return cmp.Compare(view.FieldIndex(x), view.FieldIndex(y)) })
		for _, n := range names {
			f := r.Fields[n]
			fmt.Fprintf(out, "  %-11s in %d windows, largest change %s", n, f.Windows, fmtNum(f.MaxAbs))
			if f.MaxRel > 0 {
				fmt.Fprintf(out, " (%.3g%%)", 100*f.MaxRel)
			}
			fmt.Fprintln(out)
		}
	}
	if len(r.Changed) > 0 {
		n := len(r.Changed)
		if limit > 0 {
			n = min(n, limit)
		}
		fmt.Fprintf(out, "\nchanged windows (%d of %d; --limit 0 lists all, --json gives every value):\n", n, len(r.Changed))
		for _, w := range r.Changed[:n] {
			fmt.Fprintf(out, "  %s %s %s %s:", w.Device, w.Series, w.Window, w.Start.Format(time.RFC3339))
			for _, name := range view.Fields {
				d, ok := w.Deltas[name]
				if !ok {
					continue
				}
				fmt.Fprintf(out, "  %s %s → %s", name, fmtPtr(d.A), fmtPtr(d.B))
				if d.Delta != nil {
					fmt.Fprintf(out, " (%+g)", *d.Delta)
				}
			}
			fmt.Fprintln(out)
		}
	}
	for _, side := range []struct {
		name string
		refs []windowRef
	}{{r.A, r.OnlyA}, {r.B, r.OnlyB}} {
		if len(side.refs) == 0 {
			continue
		}
		n := len(side.refs)
		if limit > 0 {
			n = min(n, limit)
		}
		fmt.Fprintf(out, "\nonly in %s (%d of %d):\n", side.name, n, len(side.refs))
		for _, w := range side.refs[:n] {
			fmt.Fprintf(out, "  %s %s %s %s\n", w.Device, w.Series, w.Window, w.Start.Format(time.RFC3339))
		}
	}
}

func fmtNum(x float64) string { return fmt.Sprintf("%g", x) }

func fmtPtr(p *float64) string {
	if p == nil {
		return "—"
	}
	return fmt.Sprintf("%g", *p)
}
