package daemon

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/edged-io/edged/aggregate"
	"github.com/edged-io/edged/aggregate/view"
	"github.com/edged-io/edged/internal/config"
)

type queryRow struct {
	Start  time.Time          `json:"start"`
	End    time.Time          `json:"end"`
	Fields map[string]float64 `json:"fields"`
}

// handleQuery serves
// /api/v1/query?series=S[&device=D][&window=1m][&from=T&to=T][&view=V]
// with T as RFC 3339 or unix seconds; default: the last hour, the smallest
// window, the active view version (see versions).
func (d *Daemon) handleQuery(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	series := q.Get("series")
	if series == "" {
		http.Error(w, "series is required (see /api/v1/series)", http.StatusBadRequest)
		return
	}
	device := q.Get("device")
	if device == "" {
		device = d.cfg.Device
	}
	var size time.Duration
	if ws := q.Get("window"); ws != "" {
		v, err := time.ParseDuration(ws)
		if err != nil {
			http.Error(w, fmt.Sprintf("window %q is not a duration like 10s or 1m", ws), http.StatusBadRequest)
			return
		}
		size = v
	}
	now := time.Now()
	from, err := parseTime(q.Get("from"), now.Add(-time.Hour))
	if err != nil {
		http.Error(w, "from: "+err.Error(), http.StatusBadRequest)
		return
	}
	to, err := parseTime(q.Get("to"), now)
	if err != nil {
		http.Error(w, "to: "+err.Error(), http.StatusBadRequest)
		return
	}
	var (
		version string
		rows    []view.Row
	)
	err = d.versions.read(q.Get("view"), func(v string, st viewReader, sizes []time.Duration) error {
		version = v
		if size == 0 && len(sizes) > 0 {
			size = sizes[0]
		}
		var err error
		rows, err = st.Query(device, series, size, from.UnixNano(), to.UnixNano())
		return err
	})
	if err != nil {
		http.Error(w, err.Error(), httpStatus(err))
		return
	}
	out := make([]queryRow, 0, len(rows))
	for _, row := range rows {
		qr := queryRow{Start: time.Unix(0, row.Start).UTC(), End: time.Unix(0, row.End).UTC(), Fields: map[string]float64{}}
		for i, v := range row.Values {
			if !math.IsNaN(v) {
				qr.Fields[view.Fields[i]] = v
			}
		}
		out = append(out, qr)
	}
	writeJSON(w, map[string]any{"device": device, "series": series, "window": size.String(), "view": version, "rows": out})
}

// handleSeries serves /api/v1/series[?view=V]: the series of the active
// view version (or of V).
func (d *Daemon) handleSeries(w http.ResponseWriter, r *http.Request) {
	var list []view.SeriesInfo
	err := d.versions.read(r.URL.Query().Get("view"), func(_ string, st viewReader, _ []time.Duration) error {
		list = st.Series()
		return nil
	})
	if err != nil {
		http.Error(w, err.Error(), httpStatus(err))
		return
	}
	writeJSON(w, list)
}

func httpStatus(err error) int {
	switch {
	case errors.Is(err, view.ErrNoVersion):
		return http.StatusNotFound
	case errors.Is(err, view.ErrVersionName):
		return http.StatusBadRequest
	case errors.Is(err, errVersionRead):
		return http.StatusServiceUnavailable
	}
	return http.StatusBadRequest
}

// AggregateOptions are the aggregator's options for a configuration.
// The daemon and edged replay use them alike, so that a version's
// checkpoint is the same whichever wrote it.
func AggregateOptions(c *config.Config) aggregate.Options {
	sizes := make([]time.Duration, len(c.Aggregate.Windows))
	for i, w := range c.Aggregate.Windows {
		sizes[i] = time.Duration(w)
	}
	return aggregate.Options{Windows: sizes, Lateness: time.Duration(c.Aggregate.Lateness),
		IdleAfter: time.Duration(c.Aggregate.IdleAfter), Quantiles: c.Aggregate.Quantiles}
}

// viewReader is what the API reads a version through: the daemon's own
// store or a snapshot of another version.
type viewReader interface {
	Query(device, series string, size time.Duration, from, to int64) ([]view.Row, error)
	Series() []view.SeriesInfo
}

// snapshotTTL is how long a snapshot of another version serves queries
// before it is taken again (a replay may be writing that version), and
// snapshotIdle how long an unused one is kept.
const (
	snapshotTTL  = 5 * time.Second
	snapshotIdle = time.Minute
)

var errVersionRead = errors.New("cannot read the view version")

// versions serves the API's reads of view versions. The daemon writes one
// version (own); the active one (DATA/views/ACTIVE, set by edged views
// activate; the daemon's own when there is none) is read by default, and
// any version on request. Other versions are read through snapshots
// (view.OpenSnapshot), which never disturb a replay writing them; a
// snapshot is taken again after snapshotTTL.
type versions struct {
	root  string
	own   string
	store *view.Store
	sizes []time.Duration

	mu    sync.Mutex // held while a snapshot is read or replaced
	snaps map[string]*cachedSnapshot
}

type cachedSnapshot struct {
	snap        *view.Snapshot
	sizes       []time.Duration
	taken, used time.Time
}

func newVersions(root, own string, store *view.Store, sizes []time.Duration) *versions {
	return &versions{root: root, own: own, store: store, sizes: slices.Sorted(slices.Values(sizes)),
		snaps: map[string]*cachedSnapshot{}}
}

// read calls fn with the requested version ("" for the active one).
func (vs *versions) read(version string, fn func(version string, st viewReader, sizes []time.Duration) error) error {
	if version == "" {
		a, err := view.Active(vs.root)
		if err != nil {
			return fmt.Errorf("%w: %v", errVersionRead, err)
		}
		version = cmp.Or(a, vs.own)
	}
	if version == vs.own {
		return fn(version, vs.store, vs.sizes)
	}
	if err := view.ValidVersion(version); err != nil {
		return err
	}
	vs.mu.Lock()
	defer vs.mu.Unlock()
	now := time.Now()
	for v, c := range vs.snaps {
		if v != version && now.Sub(c.used) > snapshotIdle {
			c.snap.Close()
			delete(vs.snaps, v)
		}
	}
	c := vs.snaps[version]
	if c == nil || now.Sub(c.taken) > snapshotTTL {
		if !view.Exists(vs.root, version) {
			return fmt.Errorf("%w: %s (see edged views list)", view.ErrNoVersion, version)
		}
		dir := view.VersionDir(vs.root, version)
		snap, err := view.OpenSnapshot(vs.root, dir)
		if err != nil {
			return fmt.Errorf("%w %s: %v", errVersionRead, version, err)
		}
		sizes, _ := view.Sizes(dir)
		if c != nil {
			c.snap.Close()
		}
		c = &cachedSnapshot{snap: snap, sizes: sizes, taken: now}
		vs.snaps[version] = c
	}
	c.used = now
	return fn(version, c.snap, c.sizes)
}

// close closes the snapshots.
func (vs *versions) close() error {
	vs.mu.Lock()
	defer vs.mu.Unlock()
	var errs []error
	for v, c := range vs.snaps {
		errs = append(errs, c.snap.Close())
		delete(vs.snaps, v)
	}
	return errors.Join(errs...)
}

// closeViews closes the daemon's views and releases its version's lock;
// it is idempotent.
func (d *Daemon) closeViews() error {
	var errs []error
	if d.versions != nil {
		errs = append(errs, d.versions.close())
	}
	if d.views != nil {
		errs = append(errs, d.views.Close())
		d.views = nil
	}
	if d.viewLock != nil {
		errs = append(errs, d.viewLock.Unlock())
		d.viewLock = nil
	}
	return errors.Join(errs...)
}

func parseTime(s string, def time.Time) (time.Time, error) {
	if s == "" {
		return def, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	sec, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither RFC 3339 nor unix seconds", s)
	}
	return time.Unix(0, int64(sec*1e9)), nil
}

// windowTopic is <prefix>/<device>/agg/<window>/<series>.
func windowTopic(prefix string, w aggregate.Window) string {
	return prefix + "/" + w.Device + "/agg/" + aggregate.SizeName(w.Size) + "/" + w.Series
}

type windowMessage struct {
	Device      string             `json:"device"`
	Series      string             `json:"series"`
	Unit        string             `json:"unit,omitempty"`
	Window      string             `json:"window"`
	WindowStart int64              `json:"window_start"` // ms since the epoch
	WindowEnd   int64              `json:"window_end"`
	Count       uint64             `json:"count"`
	Sum         *float64           `json:"sum,omitempty"`
	Min         *float64           `json:"min,omitempty"`
	Max         *float64           `json:"max,omitempty"`
	Mean        *float64           `json:"mean,omitempty"`
	First       *float64           `json:"first,omitempty"`
	Last        *float64           `json:"last,omitempty"`
	Quantiles   map[string]float64 `json:"quantiles,omitempty"`
	Late        uint64             `json:"late"`
	Duplicates  uint64             `json:"duplicates"`
	Conflicts   uint64             `json:"conflicts"`
	Untrusted   uint64             `json:"untrusted"`
	CloseLSN    uint64             `json:"lsn"`
	Amended     bool               `json:"amended,omitempty"`
}

// windowJSON is the MQTT output payload of a window. An amendment carries
// only the accounting to add to the window's earlier messages. seriesKey
// renames the "series" key (aggregate.mqtt_output.series_key).
func windowJSON(w aggregate.Window, seriesKey string) []byte {
	m := windowMessage{Device: w.Device, Series: w.Series, Unit: w.Unit, Window: aggregate.SizeName(w.Size),
		WindowStart: w.Start / 1e6, WindowEnd: w.End / 1e6, Count: w.Count, Late: w.Late, Duplicates: w.Duplicates,
		Conflicts: w.Conflicts, Untrusted: w.Untrusted + w.Invalid, CloseLSN: w.CloseLSN, Amended: w.Amended}
	if w.Count > 0 {
		m.Sum, m.Min, m.Max, m.Mean, m.First, m.Last = &w.Sum, &w.Min, &w.Max, &w.Mean, &w.First.Value, &w.Last.Value
		m.Quantiles = map[string]float64{}
		for _, q := range w.Quantiles {
			m.Quantiles[fmt.Sprintf("p%g", q.Q*100)] = q.Value
		}
	}
	b, _ := json.Marshal(m)
	if seriesKey != "" && seriesKey != "series" {
		// The device comes first and is JSON-escaped, so the first
		// `,"series":` is the key (the key is validated by the config).
		b = bytes.Replace(b, []byte(`,"series":`), []byte(`,"`+seriesKey+`":`), 1)
	}
	return b
}
