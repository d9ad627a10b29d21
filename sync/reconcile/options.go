package reconcile

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"time"
)

// Options configure a Job. The zero value of every field but URL and
// Bucket means its default.
type Options struct {
	// URL is the InfluxDB base URL, e.g. "http://influx.example:8086".
	URL string
	// Org is the InfluxDB 2 organization ("" for InfluxDB 1.8).
	Org string
	// Bucket holds the edge data and receives the batch view: a bucket,
	// or "database/retention-policy" on InfluxDB 1.8.
	Bucket string
	// Token authenticates to InfluxDB ("user:password" on 1.8 with
	// authentication). Read it from a file; it is never logged.
	Token string
	// HTTPTimeout bounds each request to InfluxDB. Default 2m.
	HTTPTimeout time.Duration

	// Devices restricts a run to these devices; empty means every device
	// with an edged_progress point.
	Devices []string
	// View restricts a run to one view tag ("v1"); empty means all.
	View string
	// Parallel is the number of devices reconciled at once. Default 4.
	Parallel int
	// Since, when positive, leaves out windows that start before
	// now − Since (a bound on the work of each run for a large history).
	// Zero means all windows.
	Since time.Duration
	// Full recomputes every window, not only those whose edge row changed
	// since the previous run; it still writes only what changed. It
	// catches raw data changed outside the edge's shipping.
	Full bool
	// DryRun computes and reports without writing anything.
	DryRun bool
	// ChunkSpan bounds the time range of raw readings read at once per
	// device (a single window longer than it is read whole). Default 3h.
	ChunkSpan time.Duration

	// Progress receives a progress line every ProgressEvery (default 5s)
	// while a run lasts; nil for none.
	Progress      io.Writer
	ProgressEvery time.Duration
	// Logger receives the job's logs; nil discards them.
	Logger *slog.Logger
	// Now is the clock for Since and timestamps; nil means time.Now.
	Now func() time.Time
}

// ErrOptions reports invalid Options.
var ErrOptions = errors.New("reconcile: invalid options")

// Validate reports the first invalid field.
func (o *Options) Validate() error {
	_, err := o.normalize()
	return err
}

func (o *Options) normalize() (Options, error) {
	n := *o
	if n.URL == "" {
		return n, fmt.Errorf("%w: no InfluxDB URL (--url or influx.url)", ErrOptions)
	}
	if u, err := url.Parse(n.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return n, fmt.Errorf("%w: URL %q is not an http(s) URL", ErrOptions, n.URL)
	}
	if n.Bucket == "" {
		return n, fmt.Errorf("%w: no bucket (--bucket or influx.bucket)", ErrOptions)
	}
	if n.HTTPTimeout == 0 {
		n.HTTPTimeout = 2 * time.Minute
	}
	if n.HTTPTimeout < time.Second {
		return n, fmt.Errorf("%w: HTTP timeout %v is under 1s", ErrOptions, n.HTTPTimeout)
	}
	if n.Parallel == 0 {
		n.Parallel = 4
	}
	if n.Parallel < 1 || n.Parallel > 256 {
		return n, fmt.Errorf("%w: parallel %d is outside [1, 256]", ErrOptions, n.Parallel)
	}
	if n.Since < 0 {
		return n, fmt.Errorf("%w: since %v is negative", ErrOptions, n.Since)
	}
	if n.ChunkSpan == 0 {
		n.ChunkSpan = 3 * time.Hour
	}
	if n.ChunkSpan < time.Second {
		return n, fmt.Errorf("%w: chunk span %v is under 1s", ErrOptions, n.ChunkSpan)
	}
	if n.ProgressEvery == 0 {
		n.ProgressEvery = 5 * time.Second
	}
	if n.Logger == nil {
		n.Logger = slog.New(slog.DiscardHandler)
	}
	if n.Now == nil {
		n.Now = time.Now
	}
	return n, nil
}
