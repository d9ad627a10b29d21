package ship

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	influxdb2 "github.com/influxdata/influxdb-client-go/v2"
	"github.com/influxdata/influxdb-client-go/v2/api"

	"github.com/edged-io/edged"
	"github.com/edged-io/edged/wal"
)

// ErrClosed is returned by Run after Close.
var ErrClosed = errors.New("ship: shipper closed")

// readChunk is how many points fill takes from one log before turning to
// the other, so that window rows keep up with readings during a backlog.
const readChunk = 512

// Shipper ships the readings and estimates logs to InfluxDB. Build it with
// New, run it with Run.
type Shipper struct {
	o      Options
	logger *slog.Logger
	enc    *encoder
	dec    edged.RecordDecoder
	rs     []edged.Reading
	b      batch
	q      quarantine
	// maxBytes is BatchBytes, lowered by 413 answers.
	maxBytes int
	// wireBytes counts request body bytes sent (Stats.WireBytes).
	wireBytes atomic.Uint64

	// Clocks and randomness, replaced by tests.
	now    func() time.Time
	sleep  func(ctx context.Context, d time.Duration) error
	jitter func(n int64) int64

	// Owned by Run.
	w                               api.WriteAPIBlocking
	rr, er                          *wal.Reader
	readingsCursor, estimatesCursor uint64
	windows                         int64 // highest through mark confirmed; -1: unknown
	sent                            progress
	sentValid                       bool
	report                          struct {
		at              time.Time
		points, records uint64
	}
	records uint64 // records confirmed, for the progress report

	mu            sync.Mutex // guards st, pendingIngest, lastIngest
	st            Stats
	pendingIngest int64
	lastIngest    int64

	runMu   sync.Mutex
	running bool
	closed  bool
	cancel  context.CancelFunc
	done    chan struct{}
}

// New checks the options and builds a Shipper. It starts nothing.
func New(o Options) (*Shipper, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	o = o.withDefaults()
	s := &Shipper{
		o:        o,
		logger:   o.Logger,
		enc:      newEncoder(&o),
		q:        quarantine{dir: o.Quarantine, maxFiles: o.QuarantineFiles, maxBytes: o.QuarantineBytes},
		maxBytes: o.BatchBytes,
		now:      time.Now,
		sleep:    sleepCtx,
		jitter:   rand.Int64N,
		windows:  -1,
		done:     make(chan struct{}),
	}
	return s, nil
}

// Paused reports whether shipping is paused because the server refuses the
// credentials or the bucket (see Stats.PauseReason). It resumes by itself
// once the server accepts a re-probe.
func (s *Shipper) Paused() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st.Paused
}

// Run ships until ctx ends or Close is called, then makes a final attempt,
// bounded by Options.FinalDeadline, to ship what the logs hold, and
// returns. It returns nil when stopped that way; an error when reading a
// log or persisting a cursor fails.
func (s *Shipper) Run(ctx context.Context) error {
	s.runMu.Lock()
	switch {
	case s.closed:
		s.runMu.Unlock()
		return ErrClosed
	case s.running:
		s.runMu.Unlock()
		return errors.New("ship: Run called twice")
	}
	s.running = true
	ctx, cancel := context.WithCancel(ctx)
	s.cancel = cancel
	s.runMu.Unlock()
	defer close(s.done)
	defer cancel()

	tr := &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout: 5 * time.Second,
		MaxIdleConnsPerHost: 2,
		IdleConnTimeout:     90 * time.Second,
	}
	defer tr.CloseIdleConnections()
	// The client's own retries belong to its non-blocking API; the
	// blocking one sends each request once, and ours decides what follows.
	client := influxdb2.NewClientWithOptions(s.o.URL, s.o.Token, influxdb2.DefaultOptions().
		SetHTTPClient(&http.Client{Transport: countingTransport{tr, &s.wireBytes}}).
		SetUseGZip(true).
		SetMaxRetries(0).
		SetApplicationName("edged"))
	defer client.Close()
	s.w = client.WriteAPIBlocking(s.o.Org, s.o.Bucket)

	s.readingsCursor, _ = s.o.Readings.Cursor(s.o.Cursor)
	s.rr = s.o.Readings.NewReader(s.readingsCursor + 1)
	defer s.rr.Close()
	if s.o.Estimates != nil {
		s.estimatesCursor, _ = s.o.Estimates.Cursor(s.o.Cursor)
		s.er = s.o.Estimates.NewReader(s.estimatesCursor + 1)
		defer s.er.Close()
	}
	s.mu.Lock()
	s.st.ReadingsCursor, s.st.EstimatesCursor = s.readingsCursor, s.estimatesCursor
	s.mu.Unlock()
	s.report.at = s.now()
	s.logger.Info("ship: starting", "url", redactURL(s.o.URL), "bucket", s.o.Bucket,
		"readings_from", s.readingsCursor+1, "estimates_from", s.estimatesCursor+1)

	err := s.loop(ctx)
	if ctx.Err() != nil || errors.Is(err, wal.ErrClosed) {
		err = nil
	}
	s.final()
	return err
}

// Close stops Run (which makes its final attempt first) and waits for it.
// It is idempotent.
func (s *Shipper) Close() error {
	s.runMu.Lock()
	s.closed = true
	running, cancel := s.running, s.cancel
	s.runMu.Unlock()
	if running {
		cancel()
		<-s.done
	}
	return nil
}

// loop fills batches and ships them: when full, when their first record
// has waited FlushInterval, and otherwise waits for the logs to grow.
func (s *Shipper) loop(ctx context.Context) error {
	for {
		full, err := s.fill()
		if err != nil {
			return err
		}
		b := &s.b
		if b.records > 0 && (full || s.now().Sub(b.started) >= s.o.FlushInterval) {
			if err := s.ship(ctx); err != nil {
				return err
			}
			s.logProgress()
			continue
		}
		var deadline time.Time
		if b.records > 0 {
			deadline = b.started.Add(s.o.FlushInterval)
		} else if s.progressDue() {
			if err := s.shipProgress(ctx); err != nil {
				return err
			}
			continue
		}
		if err := s.await(ctx, deadline); err != nil {
			return err
		}
	}
}

// final ships what the logs hold within FinalDeadline.
func (s *Shipper) final() {
	ctx, cancel := context.WithTimeout(context.Background(), s.o.FinalDeadline)
	defer cancel()
	for ctx.Err() == nil {
		if _, err := s.fill(); err != nil {
			s.logger.Error("ship: final attempt", "err", err)
			break
		}
		if s.b.records == 0 {
			if s.progressDue() {
				_ = s.shipProgress(ctx)
			}
			break
		}
		if s.ship(ctx) != nil {
			break
		}
	}
	st := s.Stats()
	s.logger.Info("ship: stopped", "readings_cursor", s.readingsCursor, "estimates_cursor", s.estimatesCursor,
		"unshipped_records", st.LagRecords+st.EstimatesLagRecords, "points", st.Points)
}

// ship writes the batch (with the progress point, if it changed, which
// claims only what earlier batches confirmed) and confirms it.
func (s *Shipper) ship(ctx context.Context) error {
	b := &s.b
	if b.points() > 0 {
		if !b.progress && s.progressDue() {
			s.appendProgress()
		}
		if err := s.deliver(ctx, 0, b.points()); err != nil {
			return err
		}
		if b.progress {
			s.progressSent(b.sentProgress)
		}
	}
	return s.confirm()
}

// confirm moves the cursors past the batch the server confirmed, sets its
// refused lines aside and counts it.
func (s *Shipper) confirm() error {
	b := &s.b
	if b.readingsTo > s.readingsCursor {
		if err := s.o.Readings.SetCursor(s.o.Cursor, b.readingsTo); err != nil {
			return err
		}
		s.readingsCursor = b.readingsTo
	}
	if b.estimatesTo > s.estimatesCursor {
		if err := s.o.Estimates.SetCursor(s.o.Cursor, b.estimatesTo); err != nil {
			return err
		}
		s.estimatesCursor = b.estimatesTo
	}
	if b.through > 0 && int64(b.through) > s.windows {
		s.windows = int64(b.through)
	}
	now := s.now()
	if len(b.rejects) > 0 {
		path, err := s.q.put(now, b.rejects)
		if err != nil {
			s.logger.Error("ship: cannot keep refused lines", "err", err)
		}
		s.logger.Warn("ship: lines refused and set aside; the rest of the batch is shipped",
			"lines", len(b.rejects), "first_reason", b.rejects[0].reason, "file", path)
	}
	refused := 0
	for _, r := range b.rejects {
		if r.sent { // counted as shipped when encoded
			refused++
			switch {
			case strings.HasPrefix(r.line, mReading+","):
				b.readings--
			case strings.HasPrefix(r.line, mUntrusted+","):
				b.untrusted--
			case strings.HasPrefix(r.line, mWindow+","):
				b.windows--
			case strings.HasPrefix(r.line, mGap+","):
				b.gaps--
			}
		}
	}
	s.mu.Lock()
	st := &s.st
	st.Points += uint64(b.points() - refused)
	st.Bytes += uint64(len(b.buf))
	if b.points() > 0 {
		st.Batches++
		st.LastShipped = now
	}
	st.Readings += b.readings
	st.Untrusted += b.untrusted
	st.Windows += b.windows
	st.Gaps += b.gaps
	st.GapRecords += b.gapRecords
	st.Quarantined += uint64(len(b.rejects))
	st.ReadingsCursor, st.EstimatesCursor = s.readingsCursor, s.estimatesCursor
	st.WindowsLSN = uint64(max(s.windows, 0))
	if b.lastIngest != 0 {
		s.lastIngest = b.lastIngest
	}
	s.pendingIngest = 0
	s.mu.Unlock()
	s.records += uint64(b.records)
	b.reset()
	return nil
}

// progressDue reports whether the confirmed state differs from the last
// progress point the server confirmed.
func (s *Shipper) progressDue() bool {
	return !s.sentValid || s.sent != s.progressState()
}

func (s *Shipper) progressState() progress {
	p := progress{readings: s.readingsCursor, windows: s.windows, through: -1}
	switch {
	case s.er == nil:
		// No windows are shipped: through is the readings cursor.
		p.through = int64(s.readingsCursor)
	case s.windows >= 0:
		p.through = min(int64(s.readingsCursor), s.windows)
	}
	return p
}

func (s *Shipper) appendProgress() {
	p := s.progressState()
	b := &s.b
	b.buf = s.enc.progressLine(b.buf, p, s.now().UnixNano())
	b.ends = append(b.ends, len(b.buf))
	b.progress, b.sentProgress = true, p
}

// shipProgress writes the progress point on its own (the batch is empty).
func (s *Shipper) shipProgress(ctx context.Context) error {
	s.appendProgress()
	if err := s.deliver(ctx, 0, s.b.points()); err != nil {
		s.b.reset()
		return err
	}
	s.progressSent(s.b.sentProgress)
	return s.confirm()
}

// progressSent notes that the server confirmed the progress point p.
func (s *Shipper) progressSent(p progress) {
	s.sent, s.sentValid = p, true
	s.mu.Lock()
	defer s.mu.Unlock()
	s.st.ProgressReadingsLSN = p.readings
	if p.windows >= 0 {
		s.st.ProgressWindowsLSN = uint64(p.windows)
	}
	if p.through >= 0 {
		s.st.ProgressThroughLSN = uint64(p.through)
	}
}

// logProgress logs drain progress every ProgressEvery while there is a
// backlog.
func (s *Shipper) logProgress() {
	now := s.now()
	elapsed := now.Sub(s.report.at)
	if elapsed < s.o.ProgressEvery {
		return
	}
	st := s.Stats()
	remaining := st.LagRecords + st.EstimatesLagRecords
	if remaining > 0 {
		pps := float64(st.Points-s.report.points) / elapsed.Seconds()
		rps := float64(s.records-s.report.records) / elapsed.Seconds()
		args := []any{"points_per_s", math.Round(pps), "remaining_records", remaining}
		if rps > 0 {
			args = append(args, "eta", (time.Duration(float64(remaining)/rps) * time.Second).Round(time.Second))
		}
		s.logger.Info("ship: draining backlog", args...)
	}
	s.report.at, s.report.points, s.report.records = now, st.Points, s.records
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// countingTransport counts the bytes of request bodies as they go out
// (after the client's gzip).
type countingTransport struct {
	http.RoundTripper
	n *atomic.Uint64
}

func (c countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		req.Body = countingBody{req.Body, c.n}
	}
	return c.RoundTripper.RoundTrip(req)
}

type countingBody struct {
	io.ReadCloser
	n *atomic.Uint64
}

func (b countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n.Add(uint64(n))
	return n, err
}
