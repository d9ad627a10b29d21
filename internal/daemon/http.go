package daemon

import (
	"crypto/subtle"
	"encoding/json"
	"net/http"
	"net/http/pprof"
	"strings"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/edged-io/edged/alerts"
	"github.com/edged-io/edged/alerts/notify"
)

// routes is the HTTP API. With a token, every endpoint but /healthz
// requires "Authorization: Bearer <token>".
func (d *Daemon) routes(token string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		if err := d.log.Err(); err != nil {
			http.Error(w, "wal failed: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ready, why := d.readiness()
		if !ready {
			http.Error(w, why, http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte(why + "\n"))
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(d.metrics.registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /api/v1/wal", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, d.log.Stats())
	})
	mux.HandleFunc("GET /api/v1/series", d.handleSeries)
	mux.HandleFunc("GET /api/v1/query", d.handleQuery)
	mux.HandleFunc("GET /api/v1/alerts", func(w http.ResponseWriter, r *http.Request) {
		type delivery struct {
			notify.Stats
			DeliveredLSN uint64 `json:"delivered_lsn"`
		}
		resp := struct {
			Alerts   []alerts.Alert `json:"alerts"`
			Counts   map[string]int `json:"counts"`
			Delivery *delivery      `json:"delivery,omitempty"`
		}{Alerts: []alerts.Alert{}, Counts: map[string]int{}}
		if a := d.alerts; a != nil {
			if a.engine != nil {
				resp.Alerts, resp.Counts = a.engine.Alerts(), a.engine.Counts()
			}
			lsn, _ := a.pub.Delivered()
			resp.Delivery = &delivery{a.pub.Stats(), lsn}
		}
		writeJSON(w, resp)
	})
	mux.HandleFunc("GET /api/v1/ship", func(w http.ResponseWriter, r *http.Request) {
		if d.shipper == nil {
			writeJSON(w, map[string]any{"enabled": false})
			return
		}
		writeJSON(w, map[string]any{"enabled": true, "stats": d.shipper.Stats()})
	})
	mux.HandleFunc("GET /api/v1/deadletters", func(w http.ResponseWriter, r *http.Request) {
		if d.dead == nil {
			writeJSON(w, []struct{}{})
			return
		}
		writeJSON(w, d.dead.List(100))
	})
	if d.cfg.HTTP.Pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	if token == "" {
		return mux
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if r.URL.Path != "/healthz" && (!ok || subtle.ConstantTimeCompare([]byte(got), []byte(token)) != 1) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="edged"`)
			http.Error(w, "a valid bearer token is required", http.StatusUnauthorized)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}
