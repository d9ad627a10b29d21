// Package deadletter keeps the MQTT messages edged could not decode, so
// that an operator can see what a device sent and why it was refused. The
// store is bounded in memory (by entries and bytes) and on disk (one file
// and one rotated predecessor, each capped), counts rejects per reason for
// /metrics, and is safe for concurrent use. Nothing in it ever blocks or
// fails ingest: a message is acknowledged whether or not its dead letter
// reached the disk.
//
// # Files
//
// The directory holds deadletter.jsonl and, after a rotation,
// deadletter.jsonl.1. Each line is one entry, oldest first:
//
//	{"time":"2024-05-01T12:00:00.123Z","topic":"tele/kitchen/SENSOR","reason":"invalid_json",
//	 "detail":"…","size":812,"payload":"{\"Time\":…"}
//
// payload holds the first Options.MaxPayload bytes as text when they are
// UTF-8, else payload_base64 holds them; size is the full payload's size,
// so size > len(payload) means truncated. When writing the next line would
// take deadletter.jsonl past Options.MaxFileBytes, it is renamed to
// deadletter.jsonl.1 (replacing the previous one) and a new file starts.
// Open reads both files back, so List survives a restart.
//
// Lines are written with one write call each and never fsynced: dead
// letters are diagnostics, and an fsync per malformed message would let a
// misbehaving device slow ingest down. A process crash loses nothing (the
// kernel has the bytes); a power cut can lose the last seconds of entries
// or tear the last line, which Open skips.
package deadletter

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/edged-io/edged/sensors/payload"
	"github.com/edged-io/edged/wal"
)

// ReasonOther counts rejects whose error is not a *payload.Error (a
// message no subscription matched, for instance).
const ReasonOther payload.Reason = "other"

// File names inside the store's directory.
const (
	FileName    = "deadletter.jsonl"
	RotatedName = FileName + ".1"
)

// Limits on the strings of an entry other than the payload.
const (
	maxTopic  = 1024
	maxDetail = 2048
)

// ErrClosed is returned by Add after Close; the entry is still counted
// and kept in memory.
var ErrClosed = errors.New("deadletter: store closed")

// Entry is one rejected message.
type Entry struct {
	Time   time.Time
	Topic  string
	Reason payload.Reason
	Detail string
	// Payload is the start of the message, at most Options.MaxPayload bytes.
	Payload []byte
	// Size is the size of the whole payload.
	Size int
}

// MarshalJSON encodes e as in the files: the payload as text when it is
// UTF-8, else as payload_base64. The HTTP API serves entries this way.
func (e Entry) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(toWire(&e)); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// UnmarshalJSON decodes what MarshalJSON encodes.
func (e *Entry) UnmarshalJSON(b []byte) error {
	var w wire
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	var err error
	*e, err = w.entry()
	return err
}

// Truncated reports whether Payload is only the start of the message.
func (e *Entry) Truncated() bool { return e.Size > len(e.Payload) }

// cost approximates an entry's memory.
func (e *Entry) cost() int64 { return int64(len(e.Topic)+len(e.Detail)+len(e.Payload)) + 96 }

// Options bound a Store. Zero values take the defaults.
type Options struct {
	// MaxEntries bounds the entries kept in memory. Default 1000.
	MaxEntries int
	// MaxBytes bounds the memory held by entries (payloads, topics and
	// details). Default 1 MiB. The newest entry is always kept.
	MaxBytes int64
	// MaxPayload is how much of each payload is kept. Default 1 KiB.
	MaxPayload int
	// MaxFileBytes caps each of the two files. Default 1 MiB, so the store
	// takes at most about 2 MiB of disk.
	MaxFileBytes int64
	// Now stamps entries added without a time. Default time.Now.
	Now func() time.Time
}

// Validate reports a negative bound.
func (o *Options) Validate() error {
	var errs []error
	if o.MaxEntries < 0 {
		errs = append(errs, fmt.Errorf("deadletter: negative max entries %d", o.MaxEntries))
	}
	if o.MaxBytes < 0 {
		errs = append(errs, fmt.Errorf("deadletter: negative max bytes %d", o.MaxBytes))
	}
	if o.MaxPayload < 0 {
		errs = append(errs, fmt.Errorf("deadletter: negative max payload %d", o.MaxPayload))
	}
	if o.MaxFileBytes < 0 {
		errs = append(errs, fmt.Errorf("deadletter: negative max file bytes %d", o.MaxFileBytes))
	}
	return errors.Join(errs...)
}

func (o *Options) setDefaults() {
	if o.MaxEntries == 0 {
		o.MaxEntries = 1000
	}
	if o.MaxBytes == 0 {
		o.MaxBytes = 1 << 20
	}
	if o.MaxPayload == 0 {
		o.MaxPayload = 1 << 10
	}
	if o.MaxFileBytes == 0 {
		o.MaxFileBytes = 1 << 20
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// Stats describe a store.
type Stats struct {
	Entries int   // in memory
	Bytes   int64 // memory held by the entries
	Evicted uint64
	// WriteErrors counts entries that did not reach the file;
	// LastWriteError is the latest such error (nil after a good write).
	WriteErrors    uint64
	LastWriteError error
	// Skipped counts lines of the files that Open could not read back.
	Skipped int
}

// Store is a bounded dead-letter store. The zero value is not usable;
// call Open.
type Store struct {
	dir  string
	opts Options

	mu      sync.Mutex
	ring    []Entry // ring[(head+i)%len(ring)], i < n, oldest first
	head, n int
	bytes   int64
	counts  map[payload.Reason]uint64
	f       *os.File // nil: memory only, or closed
	size    int64    // of f
	closed  bool
	stats   Stats
	line    bytes.Buffer
}

// Open opens the store in dir, creating dir if needed, and loads the
// entries its files hold. With dir == "" the store keeps entries in memory
// only.
func Open(dir string, o Options) (*Store, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	o.setDefaults()
	s := &Store{dir: dir, opts: o, ring: make([]Entry, o.MaxEntries), counts: make(map[payload.Reason]uint64)}
	if dir == "" {
		return s, nil
	}
	if err := wal.MkdirAll(dir); err != nil {
		return nil, fmt.Errorf("deadletter: %w", err)
	}
	for _, name := range []string{RotatedName, FileName} {
		if err := s.load(filepath.Join(dir, name)); err != nil {
			return nil, err
		}
	}
	if err := s.openFile(); err != nil {
		return nil, err
	}
	return s, nil
}

// openFile opens the current file for appending.
func (s *Store) openFile() error {
	f, err := os.OpenFile(filepath.Join(s.dir, FileName), os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return fmt.Errorf("deadletter: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("deadletter: %w", err)
	}
	s.f, s.size = f, fi.Size()
	var last [1]byte
	if s.size > 0 {
		if _, err := f.ReadAt(last[:], s.size-1); err == nil && last[0] != '\n' {
			// A torn last line: end it, so that the next entry starts clean.
			n, _ := f.Write([]byte{'\n'})
			s.size += int64(n)
		}
	}
	return nil
}

// load appends the entries of one file, skipping lines that do not parse.
func (s *Store) load(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("deadletter: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20+s.opts.MaxPayload*8)
	for sc.Scan() {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		var w wire
		if err := json.Unmarshal(sc.Bytes(), &w); err != nil {
			s.stats.Skipped++
			continue
		}
		e, err := w.entry()
		if err != nil {
			s.stats.Skipped++
			continue
		}
		s.push(e)
	}
	if err := sc.Err(); err != nil {
		s.stats.Skipped++ // an overlong line: the rest of the file is unread
	}
	return nil
}

// Add records e: counts it, keeps it in memory and appends it to the
// file. The payload is copied (and truncated), so the caller may reuse it.
// A non-nil error means only that the entry did not reach the disk.
func (s *Store) Add(e Entry) error {
	e = s.prepare(e)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.counts[e.Reason]++
	s.push(e)
	if s.closed {
		return ErrClosed
	}
	if s.dir == "" {
		return nil
	}
	err := s.write(&e)
	if err != nil {
		s.stats.WriteErrors++
	}
	s.stats.LastWriteError = err
	return err
}

// Reject records a message a decoder refused; it is the sensors.Rejecter
// the MQTT source calls. err's reason is taken from a *payload.Error, else
// it counts as ReasonOther. A disk error shows in Stats.
func (s *Store) Reject(topic string, p []byte, err error) {
	e := Entry{Topic: topic, Reason: ReasonOther, Payload: p}
	var pe *payload.Error
	switch {
	case errors.As(err, &pe):
		e.Reason, e.Detail = pe.Reason, pe.Detail
	case err != nil:
		e.Detail = err.Error()
	}
	_ = s.Add(e) // counted in Stats; ingest goes on regardless
}

// prepare truncates and copies e's fields.
func (s *Store) prepare(e Entry) Entry {
	if e.Time.IsZero() {
		e.Time = s.opts.Now()
	}
	if e.Reason == "" {
		e.Reason = ReasonOther
	}
	if e.Size < len(e.Payload) {
		e.Size = len(e.Payload)
	}
	e.Topic = string(truncate([]byte(e.Topic), maxTopic))
	e.Detail = string(truncate([]byte(e.Detail), maxDetail))
	e.Payload = bytes.Clone(truncate(e.Payload, s.opts.MaxPayload))
	return e
}

// truncate cuts b to at most n bytes, backing off so as not to split a
// UTF-8 sequence of text.
func truncate(b []byte, n int) []byte {
	if len(b) <= n {
		return b
	}
	for k := n; k > n-utf8.UTFMax && k > 0; k-- {
		if utf8.Valid(b[:k]) {
			return b[:k]
		}
	}
	return b[:n]
}

// push appends e to the ring and evicts the oldest entries over bounds.
func (s *Store) push(e Entry) {
	if s.n == len(s.ring) {
		s.evict()
	}
	s.ring[(s.head+s.n)%len(s.ring)] = e
	s.n++
	s.bytes += e.cost()
	for s.n > 1 && s.bytes > s.opts.MaxBytes {
		s.evict()
	}
}

func (s *Store) evict() {
	old := &s.ring[s.head]
	s.bytes -= old.cost()
	*old = Entry{}
	s.head = (s.head + 1) % len(s.ring)
	s.n--
	s.stats.Evicted++
}

// write appends one line, rotating first if the file would exceed its cap.
func (s *Store) write(e *Entry) error {
	if s.f == nil { // a failed rotation left no file open
		if err := s.openFile(); err != nil {
			return err
		}
	}
	s.line.Reset()
	enc := json.NewEncoder(&s.line)
	enc.SetEscapeHTML(false) // keep payloads readable with cat
	if err := enc.Encode(toWire(e)); err != nil {
		return fmt.Errorf("deadletter: encode: %w", err)
	}
	if s.size > 0 && s.size+int64(s.line.Len()) > s.opts.MaxFileBytes {
		if err := s.rotate(); err != nil {
			return err
		}
	}
	n, err := s.f.Write(s.line.Bytes())
	s.size += int64(n)
	if err != nil {
		return fmt.Errorf("deadletter: %w", err)
	}
	return nil
}

// rotate renames the file to its .1 name and starts a new one. If the
// rename fails the entry is not written (the cap holds) and the next write
// tries again.
func (s *Store) rotate() error {
	cur, old := filepath.Join(s.dir, FileName), filepath.Join(s.dir, RotatedName)
	if err := os.Rename(cur, old); err != nil {
		return fmt.Errorf("deadletter: rotate: %w", err)
	}
	s.f.Close()
	s.f = nil
	return s.openFile() // on error, the next write tries again
}

// List returns up to limit entries, newest first (all of them if limit
// <= 0). The entries are copies.
func (s *Store) List(limit int) []Entry {
	s.mu.Lock()
	defer s.mu.Unlock()
	if limit <= 0 || limit > s.n {
		limit = s.n
	}
	out := make([]Entry, 0, limit)
	for i := s.n - 1; i >= 0 && len(out) < limit; i-- {
		e := s.ring[(s.head+i)%len(s.ring)]
		e.Payload = bytes.Clone(e.Payload)
		out = append(out, e)
	}
	return out
}

// Counts returns the number of entries added since Open, per reason.
// Entries read back from the files are not counted again.
func (s *Store) Counts() map[payload.Reason]uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := make(map[payload.Reason]uint64, len(s.counts))
	for r, n := range s.counts {
		m[r] = n
	}
	return m
}

// Stats returns the store's current statistics.
func (s *Store) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.Entries, st.Bytes = s.n, s.bytes
	return st
}

// Close closes the file. It is idempotent; entries added later are kept
// in memory only.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f = nil
	if err != nil {
		return fmt.Errorf("deadletter: %w", err)
	}
	return nil
}

// wire is an entry's JSON line.
type wire struct {
	Time          time.Time      `json:"time"`
	Topic         string         `json:"topic"`
	Reason        payload.Reason `json:"reason"`
	Detail        string         `json:"detail,omitempty"`
	Size          int            `json:"size"`
	Payload       *string        `json:"payload,omitempty"`
	PayloadBase64 []byte         `json:"payload_base64,omitempty"` // base64 in encoding/json
}

func toWire(e *Entry) *wire {
	w := &wire{Time: e.Time.UTC(), Topic: e.Topic, Reason: e.Reason, Detail: e.Detail, Size: e.Size}
	if utf8.Valid(e.Payload) {
		p := string(e.Payload)
		w.Payload = &p
	} else {
		w.PayloadBase64 = e.Payload
	}
	return w
}

func (w *wire) entry() (Entry, error) {
	e := Entry{Time: w.Time, Topic: w.Topic, Reason: w.Reason, Detail: w.Detail, Size: w.Size}
	switch {
	case w.Payload != nil:
		e.Payload = []byte(*w.Payload)
	case w.PayloadBase64 != nil:
		e.Payload = w.PayloadBase64
	}
	if e.Reason == "" || e.Time.IsZero() {
		return e, errors.New("incomplete entry")
	}
	if e.Size < len(e.Payload) {
		e.Size = len(e.Payload)
	}
	return e, nil
}
