package ship

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"regexp"
	"time"

	"github.com/edged-io/edged"
	"github.com/edged-io/edged/aggregate"
	"github.com/edged-io/edged/wal"
)

// Options configure a Shipper. The zero value of every optional field is a
// sensible default.
type Options struct {
	// URL of the InfluxDB server, e.g. "http://central:8086". Required.
	URL string
	// Token authenticates the writes: an InfluxDB 2.x API token, or
	// "user:password" for 1.8. It is a secret: the shipper never logs it,
	// and error messages it reports have it redacted.
	Token string
	// Org is the InfluxDB 2.x organisation (ignored by 1.8).
	Org string
	// Bucket is a 2.x bucket, or "database/retention-policy" on 1.8.
	// Required.
	Bucket string
	// Device tags the points that do not come from a record (gaps,
	// progress), and readings or rows whose device is empty. Required.
	Device string

	// Readings is the readings log. Required.
	Readings *wal.Log
	// Estimates is the estimates log written by aggregate/stream. Nil ships
	// readings, gaps and progress only.
	Estimates *wal.Log
	// Cursor names the shipper's cursor in both logs. Default "shipper".
	Cursor string

	// BatchSize bounds the points of one write (a record's readings are
	// never split, so a batch may exceed it by one record). Default 5000.
	BatchSize int
	// BatchBytes bounds the line protocol bytes of one write (before
	// compression), in the same way. Default 4 MiB. A 413 from the
	// server lowers the bound for the rest of the run.
	BatchBytes int
	// FlushInterval is how long a partial batch waits for more records
	// before it is shipped. Default 1s.
	FlushInterval time.Duration
	// Timeout bounds one write request. Default 10s.
	Timeout time.Duration
	// BackoffMin and BackoffMax bound the exponential backoff between
	// retries (full jitter: a retry waits a random time up to
	// min(BackoffMax, BackoffMin·2^attempt)); while paused by a 401/403
	// the shipper re-probes at that pace. Defaults 1s and 2m.
	BackoffMin, BackoffMax time.Duration
	// FinalDeadline bounds the final attempt to ship what is in the logs
	// once Run's context ends. Default 5s.
	FinalDeadline time.Duration
	// ProgressEvery is how often a line reports progress while a backlog
	// drains. Default 10s.
	ProgressEvery time.Duration

	// Alpha is the relative-error bound of the edge's quantile sketches,
	// shipped as the alpha field of every window row. Default
	// aggregate.DefaultRelativeAccuracy.
	Alpha float64
	// View tags window rows with the version of the view that produced
	// them. Default "v1".
	View string
	// Untrusted is the aggregator's clock rule (aggregate.Aggregator's
	// Untrusted method): readings it refuses go to edged_untrusted. It is
	// called from Run's goroutine and must not modify the reading. Nil
	// applies the readings' own flags only.
	Untrusted func(*edged.Reading) bool

	// Quarantine is the directory for lines the server refused as bad (a
	// file per batch, each line after a comment with the server's
	// message). Empty: such lines are logged and counted only.
	Quarantine string
	// QuarantineFiles and QuarantineBytes bound the quarantine directory:
	// the oldest files go first. Defaults 100 files and 16 MiB.
	QuarantineFiles int
	QuarantineBytes int64

	// Alert is called (from Run's goroutine) when shipping pauses because
	// the server refuses the credentials or the bucket (401, 403, 404),
	// with the reason, and with "" when it resumes. Optional; see also
	// Shipper.Paused.
	Alert func(reason string)
	// Logger receives errors, pauses and progress. Nil discards them.
	Logger *slog.Logger
}

// Defaults of the Options fields.
const (
	DefaultCursor          = "shipper"
	DefaultBatchSize       = 5000
	DefaultBatchBytes      = 4 << 20
	DefaultFlushInterval   = time.Second
	DefaultTimeout         = 10 * time.Second
	DefaultBackoffMin      = time.Second
	DefaultBackoffMax      = 2 * time.Minute
	DefaultFinalDeadline   = 5 * time.Second
	DefaultProgressEvery   = 10 * time.Second
	DefaultView            = "v1"
	DefaultQuarantineFiles = 100
	DefaultQuarantineBytes = 16 << 20
	// MaxBatchSize bounds Options.BatchSize.
	MaxBatchSize = 100_000
)

// ErrOptions reports invalid Options.
var ErrOptions = errors.New("ship: invalid options")

var cursorName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}$`)

// Validate reports the first invalid field. Its messages never include the
// token.
func (o *Options) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrOptions, fmt.Sprintf(format, args...))
	}
	if o.URL == "" {
		return bad("URL is required (e.g. http://central:8086)")
	}
	u, err := url.Parse(o.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return bad("URL %q needs a scheme and host: http://host:8086 or https://host:8086", redactURL(o.URL))
	}
	if u.User != nil {
		return bad("URL %q must not hold credentials: use Token", redactURL(o.URL))
	}
	if o.Bucket == "" {
		return bad(`Bucket is required (1.8: "database/retention-policy")`)
	}
	if o.Device == "" {
		return bad("Device is required")
	}
	if !tagSafe(o.Device) {
		return bad("Device %q cannot be a line-protocol tag value", o.Device)
	}
	if o.View != "" && !tagSafe(o.View) {
		return bad("View %q cannot be a line-protocol tag value", o.View)
	}
	if o.Readings == nil {
		return bad("Readings (the readings log) is required")
	}
	if o.Cursor != "" && !cursorName.MatchString(o.Cursor) {
		return bad("Cursor %q: letters, digits, _ . - (at most 64)", o.Cursor)
	}
	if o.BatchSize < 0 || o.BatchSize > MaxBatchSize {
		return bad("BatchSize %d is outside 0..%d", o.BatchSize, MaxBatchSize)
	}
	if o.BatchBytes < 0 || (o.BatchBytes > 0 && o.BatchBytes < 1024) {
		return bad("BatchBytes %d is below 1024", o.BatchBytes)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"FlushInterval", o.FlushInterval}, {"Timeout", o.Timeout}, {"BackoffMin", o.BackoffMin},
		{"BackoffMax", o.BackoffMax}, {"FinalDeadline", o.FinalDeadline}, {"ProgressEvery", o.ProgressEvery}} {
		if d.v < 0 {
			return bad("%s %v is negative", d.name, d.v)
		}
	}
	if o.BackoffMin > 0 && o.BackoffMax > 0 && o.BackoffMin > o.BackoffMax {
		return bad("BackoffMin %v exceeds BackoffMax %v", o.BackoffMin, o.BackoffMax)
	}
	if o.Alpha < 0 || o.Alpha > 0.5 {
		return bad("Alpha %v is outside [0, 0.5]", o.Alpha)
	}
	if o.QuarantineFiles < 0 || o.QuarantineBytes < 0 {
		return bad("QuarantineFiles and QuarantineBytes must not be negative")
	}
	return nil
}

func (o Options) withDefaults() Options {
	def := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	if o.Cursor == "" {
		o.Cursor = DefaultCursor
	}
	if o.BatchSize == 0 {
		o.BatchSize = DefaultBatchSize
	}
	if o.BatchBytes == 0 {
		o.BatchBytes = DefaultBatchBytes
	}
	def(&o.FlushInterval, DefaultFlushInterval)
	def(&o.Timeout, DefaultTimeout)
	def(&o.BackoffMin, DefaultBackoffMin)
	def(&o.BackoffMax, max(DefaultBackoffMax, o.BackoffMin))
	def(&o.FinalDeadline, DefaultFinalDeadline)
	def(&o.ProgressEvery, DefaultProgressEvery)
	if o.Alpha == 0 {
		o.Alpha = aggregate.DefaultRelativeAccuracy
	}
	if o.View == "" {
		o.View = DefaultView
	}
	if o.QuarantineFiles == 0 {
		o.QuarantineFiles = DefaultQuarantineFiles
	}
	if o.QuarantineBytes == 0 {
		o.QuarantineBytes = DefaultQuarantineBytes
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// redactURL drops any userinfo from a URL for messages.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}
