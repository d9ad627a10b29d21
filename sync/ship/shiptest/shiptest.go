// Package shiptest provides a scriptable InfluxDB write endpoint for
// testing the shipper against answers a real server does not give on
// demand: 413, 429 with Retry-After, 401/403, 5xx, slow answers, and a
// write the server keeps but whose answer is lost (forward to a real
// server, then fail).
package shiptest

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// Request is a write the server received.
type Request struct {
	// Lines of the body (decompressed), without empty ones.
	Lines []string
	// Auth is the Authorization header.
	Auth string
	// WireBytes is the size of the body as received (compressed).
	WireBytes int
	// Status is the answer it got.
	Status int
}

// Response scripts the answer to one request.
type Response struct {
	// Status answered; 0 means 204 (or, when forwarding, the upstream's).
	Status int
	// Message is the error message of the JSON body of a non-2xx answer.
	Message string
	// RetryAfter is the Retry-After header, if not empty.
	RetryAfter string
	// Delay holds the answer back (the request's cancellation ends it).
	Delay time.Duration
	// Forward sends the write to Server.Upstream first.
	Forward bool
}

// Server is an InfluxDB /api/v2/write endpoint on 127.0.0.1. By default it
// accepts every write (or forwards it to Upstream, when set).
type Server struct {
	// URL is the server's base URL.
	URL string

	srv      *httptest.Server
	http     *http.Client
	mu       sync.Mutex
	upstream string
	queue    []Response
	respond  func(*Request) Response
	reqs     []Request
	accepted []string
}

// NewServer starts a server, closed when the test ends.
func NewServer(t testing.TB) *Server {
	s := &Server{http: &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 30 * time.Second}}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	s.URL = s.srv.URL
	t.Cleanup(s.Close)
	return s
}

// Close stops the server; it is idempotent.
func (s *Server) Close() {
	s.srv.Close()
}

// SetUpstream makes the server forward writes to a real server (its base
// URL) when a Response says Forward, or when none says otherwise.
func (s *Server) SetUpstream(url string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.upstream = url
}

// Push queues answers for the next requests, in order.
func (s *Server) Push(r ...Response) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.queue = append(s.queue, r...)
}

// Respond sets the answer to requests when the queue is empty (nil: accept).
func (s *Server) Respond(f func(*Request) Response) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.respond = f
}

// Requests returns the requests received so far.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.reqs...)
}

// Accepted returns the lines of the requests answered 2xx, in order.
func (s *Server) Accepted() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.accepted...)
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/api/v2/write" {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	wire := &countReader{r: r.Body}
	var body io.Reader = wire
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(wire)
		if err != nil {
			answer(w, http.StatusBadRequest, "bad gzip: "+err.Error(), "")
			return
		}
		body = zr
	}
	raw, err := io.ReadAll(body)
	if err != nil {
		answer(w, http.StatusBadRequest, "reading body: "+err.Error(), "")
		return
	}
	req := &Request{Auth: r.Header.Get("Authorization"), WireBytes: wire.n}
	for _, l := range strings.Split(string(raw), "\n") {
		if l != "" {
			req.Lines = append(req.Lines, l)
		}
	}

	s.mu.Lock()
	var resp Response
	switch {
	case len(s.queue) > 0:
		resp, s.queue = s.queue[0], s.queue[1:]
	case s.respond != nil:
		f := s.respond
		s.mu.Unlock()
		resp = f(req)
		s.mu.Lock()
	}
	upstream := s.upstream
	s.mu.Unlock()

	if resp.Delay > 0 {
		t := time.NewTimer(resp.Delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
	}
	status, msg := resp.Status, resp.Message
	if upstream != "" && (resp.Forward || status == 0) {
		ust, umsg := s.forward(upstream, r, raw)
		if status == 0 {
			status, msg = ust, umsg
		}
	}
	if status == 0 {
		status = http.StatusNoContent
	}
	req.Status = status
	s.mu.Lock()
	s.reqs = append(s.reqs, *req)
	if status/100 == 2 {
		s.accepted = append(s.accepted, req.Lines...)
	}
	s.mu.Unlock()
	answer(w, status, msg, resp.RetryAfter)
}

// forward posts the write to the upstream server and returns its answer.
func (s *Server) forward(upstream string, r *http.Request, raw []byte) (int, string) {
	req, err := http.NewRequestWithContext(r.Context(), http.MethodPost, upstream+r.URL.RequestURI(), bytes.NewReader(raw))
	if err != nil {
		return http.StatusBadGateway, err.Error()
	}
	req.Header.Set("Authorization", r.Header.Get("Authorization"))
	resp, err := s.http.Do(req)
	if err != nil {
		return http.StatusBadGateway, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var e struct {
		Message string `json:"message"`
	}
	if json.Unmarshal(b, &e) == nil && e.Message != "" {
		return resp.StatusCode, e.Message
	}
	return resp.StatusCode, string(b)
}

func answer(w http.ResponseWriter, status int, msg, retryAfter string) {
	if retryAfter != "" {
		w.Header().Set("Retry-After", retryAfter)
	}
	if status/100 == 2 {
		w.WriteHeader(status)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"code": http.StatusText(status), "message": msg})
}

// countReader counts the bytes read through it.
type countReader struct {
	r io.Reader
	n int
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}
