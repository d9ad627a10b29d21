package ship

import "time"

// Stats is a snapshot of the shipper's counters and state, for metrics and
// the status API.
type Stats struct {
	// Points and line-protocol bytes (before compression) the server
	// confirmed, and the batches they formed.
	Points  uint64 `json:"points"`
	Batches uint64 `json:"batches"`
	Bytes   uint64 `json:"bytes"`
	// Requests counts write requests sent, failed ones included;
	// WireBytes the bytes of their bodies as sent (gzip-compressed).
	Requests  uint64 `json:"requests"`
	WireBytes uint64 `json:"wire_bytes"`
	// Confirmed points by measurement.
	Readings  uint64 `json:"readings"`
	Untrusted uint64 `json:"untrusted"`
	Windows   uint64 `json:"windows"`
	Gaps      uint64 `json:"gaps"`
	// GapRecords counts the readings-log records the gaps stand for.
	GapRecords uint64 `json:"gap_records"`
	// Retries counts failed write requests that were retried (outages,
	// 5xx, 429, timeouts, pauses).
	Retries uint64 `json:"retries"`
	// Quarantined counts lines refused by the server or unwritable as line
	// protocol, set aside instead of shipped.
	Quarantined uint64 `json:"quarantined"`
	// SkippedNaN counts readings whose value is NaN or ±Inf.
	SkippedNaN uint64 `json:"skipped_nan"`
	// BadRecords counts records that did not decode or were of an unknown
	// kind (skipped).
	BadRecords uint64 `json:"bad_records"`
	// EstimatesLost counts estimates-log records lost before they were
	// shipped (size quota or corruption).
	EstimatesLost uint64 `json:"estimates_lost"`

	// Paused is true while the server refuses the credentials or the
	// bucket; PauseReason says what it answered.
	Paused      bool   `json:"paused"`
	PauseReason string `json:"pause_reason,omitempty"`
	// LastError is the last failed request's error, token redacted.
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
	LastShipped time.Time `json:"last_shipped,omitzero"`

	// Cursors: the last LSN of each log whose points are confirmed, and the
	// highest through mark confirmed (windows_lsn; 0 if none yet).
	ReadingsCursor  uint64 `json:"readings_cursor"`
	EstimatesCursor uint64 `json:"estimates_cursor"`
	WindowsLSN      uint64 `json:"windows_lsn"`
	// The fields of the last progress point the server confirmed: what the
	// central store knows the device has shipped.
	ProgressReadingsLSN uint64 `json:"progress_readings_lsn"`
	ProgressWindowsLSN  uint64 `json:"progress_windows_lsn"`
	ProgressThroughLSN  uint64 `json:"progress_through_lsn"`

	// Ship lag: durable records not yet confirmed (readings and estimates
	// logs), the readings log's bytes they occupy (estimated from segment
	// sizes), and how old the oldest unshipped reading is (0 when caught
	// up).
	LagRecords          uint64        `json:"lag_records"`
	EstimatesLagRecords uint64        `json:"estimates_lag_records"`
	LagBytes            int64         `json:"lag_bytes"`
	Lag                 time.Duration `json:"lag_ns"`
}

// Stats returns a snapshot. It is safe to call at any time, from any
// goroutine.
func (s *Shipper) Stats() Stats {
	s.mu.Lock()
	st := s.st
	pending, last := s.pendingIngest, s.lastIngest
	s.mu.Unlock()
	st.WireBytes = s.wireBytes.Load()

	rc, _ := s.o.Readings.Cursor(s.o.Cursor)
	ws := s.o.Readings.Stats()
	st.ReadingsCursor = rc
	if ws.DurableLSN > rc {
		st.LagRecords = ws.DurableLSN - rc
	}
	for _, seg := range ws.Segments {
		switch {
		case seg.LastLSN <= rc || seg.LastLSN < seg.FirstLSN:
		case seg.FirstLSN > rc:
			st.LagBytes += seg.Bytes
		default: // partly shipped: count the unshipped share
			st.LagBytes += int64(float64(seg.Bytes) * float64(seg.LastLSN-rc) / float64(seg.LastLSN-seg.FirstLSN+1))
		}
	}
	if s.o.Estimates != nil {
		ec, _ := s.o.Estimates.Cursor(s.o.Cursor)
		st.EstimatesCursor = ec
		if d := s.o.Estimates.DurableLSN(); d > ec {
			st.EstimatesLagRecords = d - ec
		}
	}
	if st.LagRecords > 0 {
		// The oldest unshipped reading is the first of the batch in hand;
		// failing that, the next one is newer than the last shipped.
		oldest := pending
		if oldest == 0 {
			oldest = last
		}
		if oldest != 0 {
			st.Lag = max(0, s.now().Sub(time.Unix(0, oldest)))
		}
	}
	return st
}
