package daemon

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/edged-io/edged"
	"github.com/edged-io/edged/aggregate/view"
	"github.com/edged-io/edged/wal"
)

// ticker logs a processing-time tick every interval, so that the
// aggregator closes idle series' windows at the same point of the log in a
// live run and in any replay of it.
type ticker struct {
	log      *wal.Log
	interval time.Duration
}

func (t ticker) Run(ctx context.Context) error {
	tk := time.NewTicker(t.interval)
	defer tk.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-tk.C:
			if _, err := t.log.Append(edged.AppendTick(nil, now.UnixNano())); err != nil {
				return fmt.Errorf("tick: %w", err)
			}
		}
	}
}

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
