package ship

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	influxhttp "github.com/influxdata/influxdb-client-go/v2/api/http"
)

// failKind is what the shipper does about a failed write.
type failKind int

const (
	// failRetry: outage, connection refused, timeout, 5xx, 429, anything
	// unexpected: send the same request again after a backoff.
	failRetry failKind = iota
	// failTooLarge: 413: split the request in halves.
	failTooLarge
	// failBad: 400, 422: some lines are bad; bisect to find them, ship the
	// rest, set them aside.
	failBad
	// failConfig: 401, 403, 404 (or any answer that names a missing
	// database, retention policy or bucket): the credentials or the bucket are wrong. Pause,
	// keep everything, re-probe with backoff.
	failConfig
)

// failure is a classified write error.
type failure struct {
	kind       failKind
	status     int           // HTTP status, 0 if none
	retryAfter time.Duration // from Retry-After, 0 if none
	dropped    int           // "dropped=N" of a partial write, -1 if absent
	msg        string        // token redacted
}

// maxRetryAfter caps how long a Retry-After makes the shipper wait.
const maxRetryAfter = time.Hour

// minBatchBytes is the least a 413 lowers the batch byte bound to.
const minBatchBytes = 1024

// deliver writes points lo..hi-1 of the batch until the server has them
// (or has refused some as bad, which are then in the batch's rejects). It
// returns only ctx's error.
func (s *Shipper) deliver(ctx context.Context, lo, hi int) error {
	for attempt := 0; ; attempt++ {
		body := s.b.span(lo, hi)
		err := s.post(ctx, body)
		if err == nil {
			if attempt > 0 {
				s.logger.Info("ship: write succeeded after retries", "retries", attempt, "points", hi-lo)
			}
			s.resume()
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		f := s.classify(err)
		s.noteError(f)
		switch f.kind {
		case failBad, failTooLarge:
			s.resume() // the server took the credentials
			n := hi - lo
			if n == 1 || (f.kind == failBad && f.dropped == n) {
				for i := lo; i < hi; i++ {
					s.b.rejects = append(s.b.rejects, reject{strings.TrimSuffix(string(s.b.span(i, i+1)), "\n"), f.msg, true})
				}
				return nil
			}
			if f.kind == failTooLarge && len(body)/2 < s.maxBytes {
				s.maxBytes = max(minBatchBytes, len(body)/2)
				s.logger.Warn("ship: the server refused a request as too large; splitting it and sending smaller batches",
					"bytes", len(body), "points", n, "batch_bytes", s.maxBytes)
			}
			mid := lo + n/2
			if err := s.deliver(ctx, lo, mid); err != nil {
				return err
			}
			return s.deliver(ctx, mid, hi)
		case failConfig:
			s.pause(f.msg)
		case failRetry:
			if attempt == 0 {
				s.logger.Warn("ship: write failed; retrying with backoff", "err", f.msg, "points", hi-lo)
			}
		}
		d := s.backoff(attempt)
		if f.retryAfter > 0 {
			d = min(f.retryAfter, maxRetryAfter)
		}
		s.mu.Lock()
		s.st.Retries++
		s.mu.Unlock()
		if err := s.sleep(ctx, d); err != nil {
			return err
		}
	}
}

// post sends one write request.
func (s *Shipper) post(ctx context.Context, body []byte) error {
	rctx, cancel := context.WithTimeout(ctx, s.o.Timeout)
	defer cancel()
	s.mu.Lock()
	s.st.Requests++
	s.mu.Unlock()
	// A copy: the client compresses the body in a goroutine that may
	// outlive a failed request, so it must not share the batch's buffer.
	return s.w.WriteRecord(rctx, string(body))
}

// backoff returns the wait before retry attempt+1: full jitter over an
// exponentially growing ceiling.
func (s *Shipper) backoff(attempt int) time.Duration {
	ceil := s.o.BackoffMax
	if attempt < 63 && s.o.BackoffMin <= s.o.BackoffMax>>attempt { // no overflow
		ceil = s.o.BackoffMin << attempt
	}
	return time.Duration(s.jitter(int64(ceil)) + 1)
}

var (
	droppedRE  = regexp.MustCompile(`dropped=(\d+)`)
	notFoundRE = regexp.MustCompile(`(?i)(database|retention policy|bucket|organization|org)[^\n]{0,40}not found|not found[^\n]{0,20}(database|retention policy|bucket|org)`)
)

// classify decides what to do about a failed write.
func (s *Shipper) classify(err error) failure {
	f := failure{kind: failRetry, dropped: -1}
	var he *influxhttp.Error
	if !errors.As(err, &he) || he.StatusCode == 0 {
		f.msg = s.redact(err.Error())
		if errors.Is(err, context.DeadlineExceeded) {
			f.msg = fmt.Sprintf("no answer within %v", s.o.Timeout)
		}
		return f
	}
	f.status = he.StatusCode
	msg := he.Message
	if msg == "" {
		msg = he.Error()
	}
	if len(msg) > 512 {
		msg = msg[:512] + "…"
	}
	f.msg = s.redact(strconv.Itoa(he.StatusCode) + ": " + msg)
	switch he.StatusCode {
	case http.StatusBadRequest, http.StatusUnprocessableEntity:
		f.kind = failBad
		if m := droppedRE.FindStringSubmatch(msg); m != nil {
			f.dropped, _ = strconv.Atoi(m[1])
		}
	case http.StatusRequestEntityTooLarge:
		f.kind = failTooLarge
	case http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound:
		f.kind = failConfig
	default:
		f.retryAfter = s.retryAfter(he)
	}
	if f.kind != failTooLarge && notFoundRE.MatchString(msg) {
		// A missing database or retention policy is no bad line and no
		// outage (1.8 answers 500 for a missing retention policy).
		f.kind = failConfig
	}
	return f
}

// retryAfter reads Retry-After: delay-seconds (parsed by the client) or an
// HTTP date.
func (s *Shipper) retryAfter(he *influxhttp.Error) time.Duration {
	if he.RetryAfter > 0 {
		return time.Duration(he.RetryAfter) * time.Second
	}
	if he.Header == nil {
		return 0
	}
	if t, err := http.ParseTime(he.Header.Get("Retry-After")); err == nil {
		return max(0, t.Sub(s.now()))
	}
	return 0
}

func (s *Shipper) noteError(f failure) {
	s.mu.Lock()
	s.st.LastError, s.st.LastErrorAt = f.msg, s.now()
	s.mu.Unlock()
}

// pause stops shipping until a re-probe succeeds; it logs and alerts once
// per pause.
func (s *Shipper) pause(reason string) {
	s.mu.Lock()
	was := s.st.Paused
	s.st.Paused, s.st.PauseReason = true, reason
	s.mu.Unlock()
	if was {
		return
	}
	s.logger.Error("ship: paused: the server refuses the credentials or the bucket; the log keeps the data and shipping resumes once they are fixed",
		"reason", reason, "url", redactURL(s.o.URL), "bucket", s.o.Bucket, "org", s.o.Org)
	if s.o.Alert != nil {
		s.o.Alert(reason)
	}
}

func (s *Shipper) resume() {
	s.mu.Lock()
	was := s.st.Paused
	s.st.Paused, s.st.PauseReason = false, ""
	s.mu.Unlock()
	if !was {
		return
	}
	s.logger.Info("ship: resumed: the server accepts writes again")
	if s.o.Alert != nil {
		s.o.Alert("")
	}
}

// redact removes the token (and, for "user:password", the password) from
// a message.
func (s *Shipper) redact(msg string) string {
	return redactToken(msg, s.o.Token)
}

func redactToken(msg, token string) string {
	if token == "" {
		return msg
	}
	msg = strings.ReplaceAll(msg, token, "[redacted]")
	if _, pass, ok := strings.Cut(token, ":"); ok && len(pass) >= 4 {
		msg = strings.ReplaceAll(msg, pass, "[redacted]")
	}
	return msg
}
