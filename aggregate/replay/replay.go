package replay

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edged-io/edged"
	"github.com/edged-io/edged/aggregate"
	"github.com/edged-io/edged/aggregate/stream"
	"github.com/edged-io/edged/aggregate/view"
	"github.com/edged-io/edged/wal"
)

// Errors callers branch on.
var (
	// ErrConfigChanged: the version already holds windows of another
	// aggregate configuration.
	ErrConfigChanged = errors.New("replay: version computed with another aggregate configuration")
	// ErrBoundsChanged: a resumed replay was given other --from bounds
	// than it started with.
	ErrBoundsChanged = errors.New("replay: resumed with other bounds")
)

// Options configure a Replay.
type Options struct {
	// DataDir is the daemon's data directory (see Layout). Required.
	DataDir string
	// Version names the views to compute, e.g. "v2". Required. The
	// version a running daemon writes is locked and refused.
	Version string
	// Aggregate is the configuration to compute with.
	Aggregate aggregate.Options
	// From and To bound the replay (see the package documentation).
	From, To Bound
	// Follow keeps reading the log's tail as it grows, until ctx ends.
	Follow bool
	// Activate makes Version the active view once the replay is caught
	// up (the end of the log; with Follow, its live tail), then Run
	// returns.
	Activate bool
	// Poll is how often a followed log is checked for growth. Default
	// 250ms.
	Poll time.Duration
	// Workers is the number of aggregators (series are sharded across
	// them). Default GOMAXPROCS; 1 with an Observer.
	Workers int
	// Observer, when set, sees every reading, window and tick (an
	// AlertReport).
	Observer stream.Observer
	// CheckpointEvery: default 10s.
	CheckpointEvery time.Duration
	// Progress, when set, is called every ProgressEvery (default 2s) from
	// another goroutine, and once at the end with Done set.
	Progress      func(Progress)
	ProgressEvery time.Duration
	// Keep is the view store's retention. Default view.DefaultKeep.
	Keep   time.Duration
	Logger *slog.Logger
}

// Validate reports the first invalid field.
func (o *Options) Validate() error {
	switch {
	case o.DataDir == "":
		return errors.New("replay: DataDir is required")
	case o.Workers < 0 || o.Poll < 0 || o.CheckpointEvery < 0 || o.ProgressEvery < 0:
		return errors.New("replay: Workers, Poll, CheckpointEvery and ProgressEvery must not be negative")
	case o.From.LSN > 0 && o.To.LSN > 0 && o.To.LSN < o.From.LSN:
		return fmt.Errorf("replay: --to %d is before --from %d", o.To.LSN, o.From.LSN)
	case !o.From.Time.IsZero() && !o.To.Time.IsZero() && !o.To.Time.After(o.From.Time):
		return fmt.Errorf("replay: --to %s is not after --from %s", o.To, o.From)
	}
	if err := view.ValidVersion(o.Version); err != nil {
		return err
	}
	return o.Aggregate.Validate()
}

// Progress is a snapshot of a running replay.
type Progress struct {
	Version string
	// Position is the last LSN read; Start the first of the range; End
	// its end as known now (the bound, or the log's durable end).
	Position, Start, End uint64
	// Records and Readings applied, Windows emitted (amendments
	// included), by this run.
	Records, Readings, Windows uint64
	// Rates over the last interval.
	RecordsPerSec, ReadingsPerSec float64
	// Fraction of the range done, and the time left at the current rate.
	Fraction float64
	ETA      time.Duration
	// Lag is End − Position; CaughtUp once every durable record was read.
	Lag      uint64
	CaughtUp bool
	Elapsed  time.Duration
	Done     bool
}

// Summary is what a finished Run did.
type Summary struct {
	Version string
	// StartLSN: where this run started; ThroughLSN: what its final
	// checkpoint covers.
	StartLSN, ThroughLSN uint64
	Records, Readings    uint64
	// Windows and Amendments emitted into the view; Excluded windows
	// dropped at the start edge (before ExcludeBefore, ns).
	Windows, Amendments, Excluded uint64
	ExcludeBefore                 int64
	// Gaps: records missing from the log; BadRecords: records that do
	// not decode.
	Gaps, BadRecords uint64
	Elapsed          time.Duration
	Workers          int
	// Resumed from a checkpoint; CaughtUp with the log; Interrupted by
	// ctx; Activated as the active view.
	Resumed, CaughtUp, Interrupted, Activated bool
}

// Replay recomputes a versioned view from the log.
type Replay struct {
	o       Options
	summary Summary
}

// New checks the options. It does no I/O.
func New(o Options) (*Replay, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	if o.Poll == 0 {
		o.Poll = 250 * time.Millisecond
	}
	if o.Workers == 0 {
		o.Workers = runtime.GOMAXPROCS(0)
	}
	if o.Observer != nil {
		o.Workers = 1
	}
	if o.CheckpointEvery == 0 {
		o.CheckpointEvery = 10 * time.Second
	}
	if o.ProgressEvery == 0 {
		o.ProgressEvery = 2 * time.Second
	}
	if o.Keep == 0 {
		o.Keep = view.DefaultKeep
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Replay{o: o}, nil
}

// Summary returns what Run did.
func (r *Replay) Summary() Summary { return r.summary }

// Run replays the log into the version: from its checkpoint if it has
// one (resuming), else from the start (or From). It returns when the end
// of the log (or To) is reached and checkpointed, or, with Follow, when
// ctx ends; an interrupted replay checkpoints where it stopped and the
// next Run continues from there. It returns nil when interrupted: see
// Summary.
func (r *Replay) Run(ctx context.Context) error {
	o := r.o
	started := time.Now()
	lay := Layout{o.DataDir}
	root := lay.Views()
	if err := wal.MkdirAll(root); err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	cfg, fp, err := Describe(o.Aggregate)
	if err != nil {
		return err
	}
	lock, err := view.LockVersion(root, o.Version, "edged replay")
	if err != nil {
		return err
	}
	defer lock.Unlock()

	m, err := ReadManifest(root, o.Version)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if sizes, _ := view.Sizes(view.VersionDir(root, o.Version)); len(sizes) > 0 {
			return fmt.Errorf("replay: %s holds views but no %s (an older edged wrote it?): delete it (edged views delete %s) or choose another version",
				view.VersionDir(root, o.Version), manifestName, o.Version)
		}
		m = &Manifest{Version: o.Version, Source: "replay", Created: time.Now().UTC(), Fingerprint: fp, Config: cfg}
	case err != nil:
		return err
	case m.Fingerprint != fp:
		return fmt.Errorf("%w: %s was computed with aggregate config %s, this one is %s: replay into a new version, or delete it first (edged views delete %s)",
			ErrConfigChanged, o.Version, m.Fingerprint, fp, o.Version)
	}

	ckDir := lay.Checkpoints(o.Version)
	ckLSN, err := stream.CheckpointLSN(ckDir)
	if err != nil {
		o.Logger.Warn("replay checkpoint unreadable; the stream sets it aside and starts over", "err", err)
		ckLSN = 0
	}
	walOpts := wal.Options{Dir: lay.WAL()}
	lr, err := openLogReader(walOpts, 1)
	if err != nil {
		return fmt.Errorf("replay: open the log: %w", err)
	}
	defer func() { lr.Close() }()
	lr.follow, lr.poll, lr.catchUp = o.Follow, o.Poll, o.Activate
	lr.to = o.To.LSN
	if !o.To.Time.IsZero() {
		lr.toTime = o.To.Time.UnixNano()
	}

	// start: where this run starts; restart: where a replay of this
	// version starts over, should the stream find its checkpoint unusable.
	start, restart := ckLSN+1, max(m.FromLSN, lr.log.Stats().FirstLSN, 1)
	if ckLSN > 0 {
		r.summary.Resumed = true
		if err := checkResumeBounds(m, o.From); err != nil {
			return err
		}
	} else {
		start, err = r.resolveStart(lr, m)
		if err != nil {
			return err
		}
		if err := WriteManifest(root, m); err != nil {
			return err
		}
	}
	if !o.From.Time.IsZero() && ckLSN == 0 {
		lr.fromTime = o.From.Time.UnixNano()
	}

	views, err := view.Open(view.VersionDir(root, o.Version), sortedSizes(o.Aggregate), o.Keep)
	if err != nil {
		return err
	}
	var (
		mu      sync.Mutex
		engines []*engine
	)
	cur := func() *engine {
		mu.Lock()
		defer mu.Unlock()
		return engines[len(engines)-1]
	}
	newEngine := func(ao aggregate.Options) (stream.Engine, error) {
		var inner stream.Engine
		var err error
		if o.Workers > 1 {
			inner, err = NewSharded(ao, o.Workers)
		} else {
			inner, err = aggregate.New(ao)
		}
		if err != nil {
			return nil, err
		}
		e := &engine{inner: inner, before: m.ExcludeBefore}
		e.filterF = e.filter
		mu.Lock()
		engines = append(engines, e)
		mu.Unlock()
		return e, nil
	}
	st, err := stream.New(stream.Options{
		Log: lr.log, Aggregate: o.Aggregate, Dir: ckDir, Views: views, Cursor: CursorName(o.Version),
		CheckpointEvery: o.CheckpointEvery, Observer: o.Observer, Logger: o.Logger,
		NewEngine: newEngine,
		NewReader: func(from uint64) stream.Reader {
			if from <= ckLSN {
				lr.seek(max(from, restart))
			} else {
				lr.seek(max(from, start))
			}
			return lr
		},
	})
	if err != nil {
		views.Close()
		return err
	}
	r.summary.StartLSN = max(st.Stats().CheckpointLSN+1, start)
	r.summary.Workers = o.Workers

	// Progress, from another goroutine: everything it reads is atomic.
	stopProgress := make(chan struct{})
	var pwg sync.WaitGroup
	report := func(last *sample, done bool) {
		if o.Progress == nil {
			return
		}
		o.Progress(r.progress(lr, st, cur(), r.summary.StartLSN, started, last, done))
	}
	if o.Progress != nil {
		pwg.Go(func() {
			t := time.NewTicker(o.ProgressEvery)
			defer t.Stop()
			last := &sample{at: started, pos: r.summary.StartLSN - 1}
			for {
				select {
				case <-stopProgress:
					return
				case <-t.C:
					report(last, false)
				}
			}
		})
	}

	stopReader := context.AfterFunc(ctx, func() { lr.stopped.Store(true) })
	runErr := st.Run(ctx)
	stopReader()
	close(stopProgress)
	pwg.Wait()
	for _, e := range engines {
		if c, ok := e.inner.(interface{ Close() error }); ok {
			if err := c.Close(); err != nil && runErr == nil {
				runErr = err
			}
		}
	}
	if err := views.Close(); err != nil && runErr == nil {
		runErr = err
	}

	ss := st.Stats()
	e := cur()
	r.summary.Version = o.Version
	r.summary.ThroughLSN = ss.CheckpointLSN
	r.summary.Records, r.summary.Readings = ss.Applied, e.readings.Load()
	r.summary.Windows, r.summary.Amendments, r.summary.Excluded = ss.Windows, ss.Amendments, e.excluded.Load()
	r.summary.ExcludeBefore = m.ExcludeBefore
	r.summary.Gaps, r.summary.BadRecords = ss.Gaps, ss.BadRecords
	r.summary.CaughtUp = lr.caughtUp.Load()
	r.summary.Interrupted = ctx.Err() != nil
	r.summary.Elapsed = time.Since(started)
	report(&sample{at: started, pos: r.summary.StartLSN - 1}, true)
	if runErr != nil {
		return runErr
	}

	m.ThroughLSN = ss.CheckpointLSN
	m.Windows += ss.Windows
	m.Excluded += r.summary.Excluded
	m.CaughtUp = r.summary.CaughtUp && !lr.ended
	if err := WriteManifest(root, m); err != nil {
		return err
	}
	if o.Activate && r.summary.CaughtUp && !r.summary.Interrupted {
		if err := view.SetActive(root, o.Version); err != nil {
			return err
		}
		r.summary.Activated = true
	}
	return nil
}

// checkResumeBounds refuses to resume with a --from other than the one
// the version was started with.
func checkResumeBounds(m *Manifest, from Bound) error {
	switch {
	case from.IsZero():
		return nil
	case from.LSN > 0 && from.LSN == m.FromLSN:
		return nil
	case !from.Time.IsZero() && from.Time.UnixNano() == m.ExcludeBefore:
		return nil
	}
	return fmt.Errorf("%w: %s started with from LSN %d (windows before %s excluded); resume without --from, or delete it and start over",
		ErrBoundsChanged, m.Version, m.FromLSN, time.Unix(0, m.ExcludeBefore).UTC().Format(time.RFC3339))
}

// resolveStart finds where a fresh replay starts and which windows its
// start edge makes partial, and records both in m.
func (r *Replay) resolveStart(lr *logReader, m *Manifest) (uint64, error) {
	o := r.o
	stats := lr.log.Stats()
	first := max(stats.FirstLSN, 1)
	start := first
	m.FromLSN, m.ExcludeBefore = 0, 0
	switch {
	case o.From.LSN > 0:
		start = max(o.From.LSN, first)
		m.FromLSN = o.From.LSN
	case !o.From.Time.IsZero():
		// Skip the segments last written before From: their records
		// were ingested before it. The reader skips the rest.
		for _, s := range stats.Segments {
			if !s.ModTime.Before(o.From.Time) {
				start = max(s.FirstLSN, first)
				break
			}
			start = s.LastLSN + 1
		}
		m.ExcludeBefore = o.From.Time.UnixNano()
		return start, nil
	}
	if start > 1 {
		// Records before start (cut by --from, or removed by retention)
		// may hold readings of the windows open at start.
		t, ok, err := firstIngest(lr.log, start)
		if err != nil {
			return 0, err
		}
		if ok {
			m.ExcludeBefore = t
		}
	}
	return start, nil
}

// firstIngest returns the ingest time of the first record at or after
// from that has one.
func firstIngest(l *wal.Log, from uint64) (int64, bool, error) {
	rd := l.NewReader(from)
	defer rd.Close()
	for {
		rec, err := rd.Next()
		var gap *wal.GapError
		switch {
		case errors.As(err, &gap):
			continue
		case err != nil:
			if errors.Is(err, io.EOF) {
				return 0, false, nil
			}
			var bad *wal.CorruptionError
			if errors.As(err, &bad) {
				continue
			}
			return 0, false, err
		}
		if t, ok := ingestTime(rec.Data); ok {
			return t, true, nil
		}
	}
}

// engine wraps the window engine a replay runs: it counts readings and
// drops the windows its start edge makes partial.
type engine struct {
	inner    stream.Engine
	before   int64 // 0: keep all
	emit     func(aggregate.Window)
	filterF  func(aggregate.Window)
	readings atomic.Uint64
	excluded atomic.Uint64
}

func (e *engine) ApplyEach(rec []byte, lsn uint64, emit func(aggregate.Window), each func(*edged.Reading)) error {
	if edged.Kind(rec) == edged.KindReadings && len(rec) > 1 {
		if n, k := binary.Uvarint(rec[1:]); k > 0 {
			e.readings.Add(n)
		}
	}
	if e.before == 0 {
		return e.inner.ApplyEach(rec, lsn, emit, each)
	}
	e.emit = emit
	return e.inner.ApplyEach(rec, lsn, e.filterF, each)
}

func (e *engine) filter(w aggregate.Window) {
	if w.Start < e.before {
		e.excluded.Add(1)
		return
	}
	e.emit(w)
}

// Drain passes on to a pipelined engine.
func (e *engine) Drain(emit func(aggregate.Window)) {
	d, ok := e.inner.(interface{ Drain(func(aggregate.Window)) })
	if !ok {
		return
	}
	if e.before == 0 {
		d.Drain(emit)
		return
	}
	e.emit = emit
	d.Drain(e.filterF)
}

func (e *engine) MarshalBinary() ([]byte, error) { return e.inner.MarshalBinary() }
func (e *engine) UnmarshalBinary(b []byte) error { return e.inner.UnmarshalBinary(b) }

// sample is the previous progress report, for rates.
type sample struct {
	at            time.Time
	pos, readings uint64
}

func (r *Replay) progress(lr *logReader, st *stream.Stream, e *engine, start uint64, started time.Time, last *sample, done bool) Progress {
	now := time.Now()
	ss := st.Stats()
	p := Progress{Version: r.o.Version, Position: lr.pos.Load(), Start: start, End: lr.end.Load(),
		Records: ss.Applied, Readings: e.readings.Load(), Windows: ss.Windows + ss.Amendments,
		CaughtUp: lr.caughtUp.Load(), Elapsed: now.Sub(started), Done: done}
	if lr.to > 0 {
		p.End = min(p.End, lr.to)
	}
	p.Position = max(p.Position, start-1)
	if p.End > p.Position {
		p.Lag = p.End - p.Position
	}
	if span := float64(p.End) - float64(start) + 1; span > 0 {
		p.Fraction = math.Min(1, (float64(p.Position)-float64(start)+1)/span)
	}
	if dt := now.Sub(last.at).Seconds(); dt > 0 && !done {
		p.RecordsPerSec = float64(p.Position-min(last.pos, p.Position)) / dt
		p.ReadingsPerSec = float64(p.Readings-min(last.readings, p.Readings)) / dt
		if p.RecordsPerSec > 0 {
			p.ETA = time.Duration(float64(p.Lag) / p.RecordsPerSec * float64(time.Second))
		}
	} else if secs := p.Elapsed.Seconds(); done && secs > 0 {
		p.RecordsPerSec = float64(p.Records) / secs
		p.ReadingsPerSec = float64(p.Readings) / secs
	}
	*last = sample{at: now, pos: p.Position, readings: p.Readings}
	return p
}
