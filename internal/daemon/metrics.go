package daemon

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/edged-io/edged/alerts"
	"github.com/edged-io/edged/sync/ship"
	"github.com/edged-io/edged/wal"
)

// metrics exposes the components' own counters to Prometheus: collectors
// read them at scrape time, so the hot paths keep no second set.
type metrics struct {
	registry *prometheus.Registry
}

func newMetrics(d *Daemon) *metrics {
	r := prometheus.NewRegistry()
	r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	r.MustRegister(walCollector{d.log})
	if d.mqtt != nil {
		m := d.mqtt
		r.MustRegister(
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "edged_mqtt_messages_total", Help: "MQTT messages received."},
				func() float64 { return float64(m.Stats().Messages) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "edged_mqtt_acked_total", Help: "MQTT messages acknowledged after their record was durable."},
				func() float64 { return float64(m.Stats().Acked) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "edged_mqtt_rejected_total", Help: "MQTT messages that could not be decoded."},
				func() float64 { return float64(m.Stats().Rejected) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "edged_mqtt_connected", Help: "1 while connected to the broker."},
				func() float64 {
					if m.Stats().Connected {
						return 1
					}
					return 0
				}),
		)
	}
	if out := d.out; out != nil {
		r.MustRegister(
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "edged_window_output_sent_total", Help: "Closed windows published over MQTT."},
				func() float64 { return float64(out.Stats().Sent) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "edged_window_output_dropped_total", Help: "Window messages dropped: queue full or broker unreachable."},
				func() float64 { return float64(out.Stats().Dropped) }),
		)
	}
	if d.dead != nil {
		r.MustRegister(rejectCollector{d})
	}
	if st := d.stream; st != nil {
		r.MustRegister(
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "edged_aggregate_records_total", Help: "Log records the aggregator applied."},
				func() float64 { return float64(st.Stats().Applied) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "edged_aggregate_windows_total", Help: "Windows closed and stored."},
				func() float64 { return float64(st.Stats().Windows) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "edged_aggregate_amendments_total", Help: "Accounting amendments to closed windows (late readings and the like)."},
				func() float64 { return float64(st.Stats().Amendments) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "edged_aggregate_checkpoint_lsn", Help: "LSN of the last aggregator checkpoint."},
				func() float64 { return float64(st.Stats().CheckpointLSN) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "edged_view_write_errors_total", Help: "Failed writes or syncs of the local views (retried; checkpoints wait)."},
				func() float64 { return float64(st.Stats().ViewErrors) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "edged_view_dropped_windows_total", Help: "Window rows the local views gave up on after failing too long (they are in the estimates log)."},
				func() float64 { return float64(st.Stats().ViewDropped) }),
		)
	}
	if v := d.views; v != nil {
		r.MustRegister(
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "edged_view_lanes", Help: "tstorage databases of the local views (one per window size and event-time front)."},
				func() float64 { return float64(v.Stats().Lanes) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "edged_view_side_rows", Help: "Windows in the views' side store (amended, or no lane took them)."},
				func() float64 { return float64(v.Stats().SideRows) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "edged_view_damaged", Help: "Parts of the views set aside at start (then recomputed from the log)."},
				func() float64 { return float64(len(v.Damaged())) }),
		)
	}
	if a := d.alerts; a != nil {
		if a.engine != nil {
			r.MustRegister(alertCollector{a.engine})
		}
		pub := a.pub
		r.MustRegister(
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "edged_alert_events_delivered_total", Help: "Alert events the broker acknowledged."},
				func() float64 { return float64(pub.Stats().Delivered) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "edged_alert_events_queued", Help: "Alert events waiting for the broker."},
				func() float64 { return float64(pub.Stats().Queued) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "edged_alert_events_coalesced_total", Help: "Queued alert events superseded by a later state of the same alert while the queue was full."},
				func() float64 { return float64(pub.Stats().Coalesced) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "edged_alert_delivery_retries_total", Help: "Alert events sent again after a lost connection or timeout."},
				func() float64 { return float64(pub.Stats().Retries) }),
		)
	}
	if d.shipper != nil {
		r.MustRegister(shipCollector{d.shipper})
	}
	r.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "edged_clock_synced", Help: "1 while the kernel reports the system clock synchronised (adjtimex; the test clock when EDGED_TEST_CLOCK_FILE is set)."},
		func() float64 {
			if d.clock.synced() {
				return 1
			}
			return 0
		}))
	r.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "edged_clock_stepped_ahead", Help: "1 while the clock is suspect of a step ahead taken while synchronised (clock.require_sync): readings it stamps are flagged clock_unsynced."},
		func() float64 {
			if d.clock.SteppedAhead() {
				return 1
			}
			return 0
		}))
	r.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "edged_sensors_failed", Help: "Local sensors that stopped with an error (see the log)."},
		func() float64 { return float64(d.failedSources.Load()) }))
	return &metrics{registry: r}
}

var alertStates = prometheus.NewDesc("edged_alerts", "Alert instances by state.", []string{"state"}, nil)

type alertCollector struct{ e *alerts.Engine }

func (c alertCollector) Describe(ch chan<- *prometheus.Desc) { ch <- alertStates }

func (c alertCollector) Collect(ch chan<- prometheus.Metric) {
	for state, n := range c.e.Counts() {
		ch <- prometheus.MustNewConstMetric(alertStates, prometheus.GaugeValue, float64(n), state)
	}
}

var (
	walAppends   = prometheus.NewDesc("edged_wal_appends_total", "Records appended to the write-ahead log.", nil, nil)
	walFsyncs    = prometheus.NewDesc("edged_wal_fsyncs_total", "fsync calls of the write-ahead log.", nil, nil)
	walFsyncSecs = prometheus.NewDesc("edged_wal_fsync_seconds_total", "Time spent in fsync.", nil, nil)
	walBytes     = prometheus.NewDesc("edged_wal_bytes", "Bytes in the write-ahead log's segments.", nil, nil)
	walSegments  = prometheus.NewDesc("edged_wal_segments", "Segments in the write-ahead log.", nil, nil)
	walDurable   = prometheus.NewDesc("edged_wal_durable_lsn", "Last durable log sequence number.", nil, nil)
	walLag       = prometheus.NewDesc("edged_wal_consumer_lag_records", "Durable records a consumer has not processed.", []string{"consumer"}, nil)
	walDropped   = prometheus.NewDesc("edged_wal_dropped_records_total", "Records the size quota removed before a consumer read them.", []string{"consumer"}, nil)
	walDamage    = prometheus.NewDesc("edged_wal_damage_total", "Recovery events: torn tails cut, segments quarantined, records lost.", []string{"kind"}, nil)
	walFailed    = prometheus.NewDesc("edged_wal_failed", "1 after a write or fsync error (sticky until restart).", nil, nil)
)

type walCollector struct{ l *wal.Log }

func (c walCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{walAppends, walFsyncs, walFsyncSecs, walBytes, walSegments, walDurable, walLag, walDropped, walDamage, walFailed} {
		ch <- d
	}
}

func (c walCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.l.Stats()
	ch <- prometheus.MustNewConstMetric(walAppends, prometheus.CounterValue, float64(st.Appends))
	ch <- prometheus.MustNewConstMetric(walFsyncs, prometheus.CounterValue, float64(st.Syncs))
	ch <- prometheus.MustNewConstMetric(walFsyncSecs, prometheus.CounterValue, st.SyncTime.Seconds())
	ch <- prometheus.MustNewConstMetric(walBytes, prometheus.GaugeValue, float64(st.Bytes))
	ch <- prometheus.MustNewConstMetric(walSegments, prometheus.GaugeValue, float64(len(st.Segments)))
	ch <- prometheus.MustNewConstMetric(walDurable, prometheus.GaugeValue, float64(st.DurableLSN))
	for name, lag := range st.Lag {
		ch <- prometheus.MustNewConstMetric(walLag, prometheus.GaugeValue, float64(lag), name)
	}
	for name, n := range st.Dropped {
		ch <- prometheus.MustNewConstMetric(walDropped, prometheus.CounterValue, float64(n), name)
	}
	ch <- prometheus.MustNewConstMetric(walDamage, prometheus.CounterValue, float64(st.TornTruncations), "torn_tail")
	ch <- prometheus.MustNewConstMetric(walDamage, prometheus.CounterValue, float64(st.Quarantined), "quarantined_segment")
	ch <- prometheus.MustNewConstMetric(walDamage, prometheus.CounterValue, float64(st.LostRecords), "lost_record")
	failed := 0.0
	if st.Failed != "" {
		failed = 1
	}
	ch <- prometheus.MustNewConstMetric(walFailed, prometheus.GaugeValue, failed)
}

var rejected = prometheus.NewDesc("edged_ingest_rejected_total", "Messages refused by their payload decoder, by reason (kept in the dead-letter store).", []string{"reason"}, nil)

type rejectCollector struct{ d *Daemon }

func (c rejectCollector) Describe(ch chan<- *prometheus.Desc) { ch <- rejected }

func (c rejectCollector) Collect(ch chan<- prometheus.Metric) {
	for reason, n := range c.d.dead.Counts() {
		ch <- prometheus.MustNewConstMetric(rejected, prometheus.CounterValue, float64(n), string(reason))
	}
}

var (
	shipPoints      = prometheus.NewDesc("edged_ship_points_total", "Points the central store confirmed, by measurement.", []string{"measurement"}, nil)
	shipBatches     = prometheus.NewDesc("edged_ship_batches_total", "Batches the central store confirmed.", nil, nil)
	shipBytes       = prometheus.NewDesc("edged_ship_bytes_total", "Line-protocol bytes confirmed (before gzip).", nil, nil)
	shipWire        = prometheus.NewDesc("edged_ship_wire_bytes_total", "Bytes of write requests as sent (gzip-compressed), failed ones included.", nil, nil)
	shipRetries     = prometheus.NewDesc("edged_ship_retries_total", "Write requests retried after an outage, timeout, 429 or 5xx.", nil, nil)
	shipQuarantined = prometheus.NewDesc("edged_ship_quarantined_lines_total", "Lines the central store refused as bad, kept in ship-quarantine/.", nil, nil)
	shipSkipped     = prometheus.NewDesc("edged_ship_skipped_nan_total", "Readings not shipped because their value is NaN or infinite.", nil, nil)
	shipPaused      = prometheus.NewDesc("edged_ship_paused", "1 while the central store refuses this device (401/403/404).", nil, nil)
	shipLagRecords  = prometheus.NewDesc("edged_ship_lag_records", "Records not yet confirmed by the central store, by log.", []string{"log"}, nil)
	shipLagBytes    = prometheus.NewDesc("edged_ship_lag_bytes", "Approximate bytes of the readings log not yet shipped.", nil, nil)
	shipLagSeconds  = prometheus.NewDesc("edged_ship_lag_seconds", "Age of the oldest reading not yet shipped (0 when caught up).", nil, nil)
	shipThrough     = prometheus.NewDesc("edged_ship_through_lsn", "The progress the central store holds: every record up to this LSN is shipped.", nil, nil)
)

type shipCollector struct{ s *ship.Shipper }

func (c shipCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{shipPoints, shipBatches, shipBytes, shipWire, shipRetries, shipQuarantined, shipSkipped, shipPaused,
		shipLagRecords, shipLagBytes, shipLagSeconds, shipThrough} {
		ch <- d
	}
}

func (c shipCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.s.Stats()
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter(shipPoints, st.Readings, "edged_reading")
	counter(shipPoints, st.Untrusted, "edged_untrusted")
	counter(shipPoints, st.Windows, "edged_window")
	counter(shipPoints, st.Gaps, "edged_gap")
	counter(shipBatches, st.Batches)
	counter(shipBytes, st.Bytes)
	counter(shipWire, st.WireBytes)
	counter(shipRetries, st.Retries)
	counter(shipQuarantined, st.Quarantined)
	counter(shipSkipped, st.SkippedNaN)
	paused := 0.0
	if st.Paused {
		paused = 1
	}
	gauge(shipPaused, paused)
	gauge(shipLagRecords, float64(st.LagRecords), "wal")
	gauge(shipLagRecords, float64(st.EstimatesLagRecords), "estimates")
	gauge(shipLagBytes, float64(st.LagBytes))
	gauge(shipLagSeconds, st.Lag.Seconds())
	gauge(shipThrough, float64(st.ProgressThroughLSN))
}
