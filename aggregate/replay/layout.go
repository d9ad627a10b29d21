package replay

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/edged-io/edged/aggregate"
	"github.com/edged-io/edged/aggregate/view"
	"github.com/edged-io/edged/wal"
)

// Layout names the parts of the daemon's data directory that replay and
// the daemon share.
type Layout struct{ DataDir string }

// WAL is the readings log's directory.
func (l Layout) WAL() string { return filepath.Join(l.DataDir, "wal") }

// Views is the root of the versioned views.
func (l Layout) Views() string { return filepath.Join(l.DataDir, "views") }

// Checkpoints is the directory of a version's stream checkpoint: where it
// always was for v1 (DATA/aggregate), DATA/aggregate/<version> for others.
// The daemon and replay use the same one, so either continues from the
// other's checkpoint.
func (l Layout) Checkpoints(version string) string {
	if version == view.LegacyVersion {
		return filepath.Join(l.DataDir, "aggregate")
	}
	return filepath.Join(l.DataDir, "aggregate", version)
}

// CursorName is the WAL cursor name of a replay into version (never
// written: replay opens the log read-only).
func CursorName(version string) string { return "replay-" + version }

const manifestName = "version.json"

// Manifest describes a version: how it was computed. It lives in the
// version's directory (version.json).
type Manifest struct {
	Version string `json:"version"`
	// Source is "live" (written by edged run) or "replay".
	Source  string    `json:"source"`
	Created time.Time `json:"created"`
	Updated time.Time `json:"updated"`
	// Fingerprint identifies the aggregate configuration (Config): a
	// version holds windows of one configuration only.
	Fingerprint string       `json:"fingerprint"`
	Config      ConfigRecord `json:"aggregate"`
	// FromLSN is where a replay started when it was bounded (0: the start
	// of the log).
	FromLSN uint64 `json:"from_lsn,omitempty"`
	// ExcludeBefore: a replay that did not start at the beginning of the
	// log dropped every window starting before this time (ns), since
	// records before its start may hold readings of them.
	ExcludeBefore int64 `json:"exclude_before,omitempty"`
	// ThroughLSN is the log position a replay's checkpoint covered when it
	// last stopped; Windows and Excluded count what its runs emitted and
	// dropped.
	ThroughLSN uint64 `json:"through_lsn,omitempty"`
	Windows    uint64 `json:"windows,omitempty"`
	Excluded   uint64 `json:"excluded,omitempty"`
	CaughtUp   bool   `json:"caught_up,omitempty"`
}

// ConfigRecord is the aggregate configuration of a version, readable.
type ConfigRecord struct {
	Windows          []string  `json:"windows"`
	Lateness         string    `json:"lateness"`
	IdleAfter        string    `json:"idle_after"`
	Quantiles        []float64 `json:"quantiles"`
	RelativeAccuracy float64   `json:"relative_accuracy"`
	MaxFuture        string    `json:"max_future"`
	MinTime          time.Time `json:"min_time"`
	MaxBuckets       int       `json:"max_buckets"`
	MaxPending       int       `json:"max_pending"`
}

// Describe returns the normalized configuration of o and its
// fingerprint (the first 12 hex digits of a SHA-256 of it).
func Describe(o aggregate.Options) (ConfigRecord, string, error) {
	a, err := aggregate.New(o)
	if err != nil {
		return ConfigRecord{}, "", err
	}
	n := a.Options()
	c := ConfigRecord{Lateness: n.Lateness.String(), IdleAfter: n.IdleAfter.String(), Quantiles: n.Quantiles,
		RelativeAccuracy: n.RelativeAccuracy, MaxFuture: n.MaxFuture.String(), MinTime: n.MinTime,
		MaxBuckets: n.MaxBuckets, MaxPending: n.MaxPending}
	for _, w := range n.Windows {
		c.Windows = append(c.Windows, w.String())
	}
	b, _ := json.Marshal(c)
	sum := sha256.Sum256(b)
	return c, hex.EncodeToString(sum[:6]), nil
}

// ReadManifest reads a version's manifest; os.ErrNotExist if it has none.
func ReadManifest(root, version string) (*Manifest, error) {
	b, err := os.ReadFile(filepath.Join(view.VersionDir(root, version), manifestName))
	if err != nil {
		return nil, err
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("replay: %s: %w", filepath.Join(view.VersionDir(root, version), manifestName), err)
	}
	return &m, nil
}

// WriteManifest writes a version's manifest atomically.
func WriteManifest(root string, m *Manifest) error {
	dir := view.VersionDir(root, m.Version)
	if err := wal.MkdirAll(dir); err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	m.Updated = time.Now().UTC()
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return wal.WriteFileAtomic(wal.OSFS{}, filepath.Join(dir, manifestName), append(b, '\n'))
}

// EnsureLiveManifest records, for the daemon, the configuration its live
// version is computed with (creating or updating the manifest).
func EnsureLiveManifest(root, version string, o aggregate.Options) error {
	cfg, fp, err := Describe(o)
	if err != nil {
		return err
	}
	m, err := ReadManifest(root, version)
	switch {
	case errors.Is(err, os.ErrNotExist):
		m = &Manifest{Version: version, Created: time.Now().UTC()}
	case err != nil:
		return err
	case m.Source == "live" && m.Fingerprint == fp:
		return nil
	}
	m.Source, m.Fingerprint, m.Config = "live", fp, cfg
	return WriteManifest(root, m)
}

// Bound is one end of a replay's range: an LSN, or a time compared with
// the records' ingest time. The zero Bound is open.
type Bound struct {
	LSN  uint64
	Time time.Time
}

// IsZero reports an open bound.
func (b Bound) IsZero() bool { return b.LSN == 0 && b.Time.IsZero() }

func (b Bound) String() string {
	switch {
	case b.LSN > 0:
		return "LSN " + strconv.FormatUint(b.LSN, 10)
	case !b.Time.IsZero():
		return b.Time.UTC().Format(time.RFC3339)
	}
	return "open"
}

// ParseBound parses an LSN (a positive integer), an RFC 3339 time, a date
// (2006-01-02, UTC), or a negative duration relative to now (-24h).
func ParseBound(s string, now time.Time) (Bound, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Bound{}, nil
	}
	if n, err := strconv.ParseUint(s, 10, 64); err == nil && n > 0 {
		return Bound{LSN: n}, nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return Bound{Time: t}, nil
		}
	}
	if strings.HasPrefix(s, "-") {
		if d, err := time.ParseDuration(s); err == nil {
			return Bound{Time: now.Add(d)}, nil
		}
	}
	return Bound{}, fmt.Errorf("replay: bound %q is neither an LSN, an RFC 3339 time, a date nor a negative duration (-24h)", s)
}

// sortedSizes returns the normalized window sizes of o.
func sortedSizes(o aggregate.Options) []time.Duration {
	w := slices.Clone(o.Windows)
	if w == nil {
		w = slices.Clone(aggregate.DefaultWindows)
	}
	slices.Sort(w)
	return w
}
