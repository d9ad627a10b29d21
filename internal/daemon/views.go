package daemon

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/edged-io/edged/aggregate"
	"github.com/edged-io/edged/aggregate/view"
)

type queryRow struct {
	Start  time.Time          `json:"start"`
	End    time.Time          `json:"end"`
	Fields map[string]float64 `json:"fields"`
}

// handleQuery serves /api/v1/query?series=S[&device=D]&window=1m[&from=T&to=T]
// with T as RFC 3339 or unix seconds; default: the last hour.
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
	size := time.Duration(d.cfg.Aggregate.Windows[0])
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
	rows, err := d.views.Query(device, series, size, from.UnixNano(), to.UnixNano())
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
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
	writeJSON(w, map[string]any{"device": device, "series": series, "window": size.String(), "rows": out})
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
	return prefix + "/" + w.Device + "/agg/" + w.Size.String() + "/" + w.Series
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
	m := windowMessage{Device: w.Device, Series: w.Series, Unit: w.Unit, Window: w.Size.String(),
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
