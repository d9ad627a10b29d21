package wal

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
)

// Errors callers branch on.
var (
	// ErrClosed is returned by appends after Close or after Run returned.
	ErrClosed = errors.New("wal: log closed")
	// ErrFailed wraps the write or fsync error that stopped the log. It is
	// sticky: no append succeeds after it and no record is reported durable
	// beyond what was durable before it. Restart to recover.
	ErrFailed = errors.New("wal: log failed")
	// ErrEmpty is returned for a zero-length record.
	ErrEmpty = errors.New("wal: empty record")
	// ErrTooLarge is returned for a record over MaxRecordSize.
	ErrTooLarge = errors.New("wal: record too large")
	// ErrReadOnly is returned by writes to a log opened with OpenReadOnly.
	ErrReadOnly = errors.New("wal: log opened read-only")
)

// segment is one file of the log. Fields other than first and path change
// only under Log.mu.
type segment struct {
	first   uint64
	path    string
	size    int64 // bytes written
	durable int64 // bytes known durable; equals size once closed
	closed  bool
	last    uint64 // last LSN when known exactly; 0 = derive from the next segment
	modTime time.Time
	// preallocated: the file was zero-filled ahead (see prepare.go).
	preallocated bool
}

// Log is a segmented write-ahead log. Appends from any number of goroutines
// are batched by one committer (Run) that writes and fsyncs them.
type Log struct {
	opts     Options
	fs       FS
	dir      string
	logger   *slog.Logger
	readOnly bool

	mu       sync.Mutex
	nextLSN  uint64
	pending  []byte // framed records not yet handed to the file system
	pendingN int
	written  uint64 // last LSN handed to the file system
	durable  uint64 // last LSN durable under the sync policy
	// durableLSN mirrors durable for lock-free reads by waiters.
	durableLSN atomic.Uint64
	err        error // sticky
	stopped    bool  // appends refused (Close, Run returned)
	// wake is closed and replaced whenever durableLSN advances or the log
	// fails or stops; terminal is set (before the wake) by the latter two.
	// Waiters read both without the lock.
	wake      atomic.Pointer[chan struct{}]
	terminal  atomic.Bool
	drainedCh chan struct{}
	segs      []*segment // ordered by first LSN; the last one is active
	cursors   map[string]uint64
	counters  counters

	kick         chan struct{} // an append is pending
	rotated      chan struct{} // a segment was closed
	needPrepared chan struct{} // the prepared spare segment was used
	prepared     bool          // guarded by mu: a spare segment is ready

	// Owned by the committer (Run, or Close when Run never started).
	active    File
	spare     []byte
	lastSync  time.Time
	syncTook  time.Duration // duration of the last fsync
	batchPeak int           // recent peak of records per batch
	// gatherTarget is the batch size gather waits for (0: no gathering);
	// Append kicks the committer when a batch reaches it.
	gatherTarget atomic.Int64

	repairMu  sync.Mutex
	cursorMu  sync.Mutex
	running   atomic.Bool
	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
	closeErr  error
}

// counters are cumulative event counts, reported by Stats.
type counters struct {
	Appends         uint64
	Batches         uint64
	Syncs           uint64
	SyncNanos       uint64
	Rotations       uint64
	TornTruncations uint64
	TornBytes       uint64
	Quarantined     uint64
	LostRecords     uint64
	RetainedDrops   uint64 // segments removed by retention
	Dropped         map[string]uint64
}

func segmentName(first uint64) string { return fmt.Sprintf("%020d.wal", first) }

func parseSegmentName(name string) (uint64, bool) {
	var first uint64
	if len(name) != 24 || filepath.Ext(name) != ".wal" {
		return 0, false
	}
	for _, c := range name[:20] {
		if c < '0' || c > '9' {
			return 0, false
		}
		first = first*10 + uint64(c-'0')
	}
	return first, first > 0
}

// Open opens or creates the log in opts.Dir and recovers it: the active
// (last) segment is scanned, a torn tail is truncated and kept aside under
// quarantine/, mid-segment corruption is salvaged. Closed segments are
// verified lazily (when read) or by Verify. Open starts no goroutine; call
// Run to commit appends.
func Open(opts Options) (*Log, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	l := newLog(opts.withDefaults())
	if err := l.recover(); err != nil {
		return nil, err
	}
	return l, nil
}

// OpenReadOnly opens the log for reading without changing any file, for
// inspecting the directory of a running daemon. A damaged tail reads as the
// end of the log.
func OpenReadOnly(opts Options) (*Log, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	l := newLog(opts.withDefaults())
	l.readOnly = true
	l.stopped = true
	l.terminal.Store(true)
	if err := l.load(); err != nil {
		return nil, err
	}
	return l, nil
}

func newLog(opts Options) *Log {
	l := &Log{
		opts:         opts,
		fs:           opts.FS,
		dir:          opts.Dir,
		logger:       opts.Logger,
		nextLSN:      1,
		drainedCh:    make(chan struct{}),
		cursors:      map[string]uint64{},
		kick:         make(chan struct{}, 1),
		rotated:      make(chan struct{}, 1),
		needPrepared: make(chan struct{}, 1),
		stop:         make(chan struct{}),
		done:         make(chan struct{}),
		counters:     counters{Dropped: map[string]uint64{}},
	}
	ch := make(chan struct{})
	l.wake.Store(&ch)
	return l
}

// wakeWaitersLocked wakes every WaitDurable. Callers update durableLSN or
// terminal first.
func (l *Log) wakeWaitersLocked() {
	close(l.swapWake())
}

// swapWake installs a new wake channel and returns the old one, for the
// caller to close (waking every WaitDurable) once it has released the lock:
// readying 64 waiters under it kept their next Append waiting.
func (l *Log) swapWake() chan struct{} {
	ch := make(chan struct{})
	return *l.wake.Swap(&ch)
}

// Append adds a record and returns its LSN without waiting for it to be
// written; pair it with WaitDurable, or use AppendSync. Records get LSNs in
// the order Append is called and are written in that order. Append blocks
// while more than Options.MaxPendingBytes are waiting for the committer.
// The record is copied; data may be reused at once.
func (l *Log) Append(data []byte) (uint64, error) {
	if len(data) == 0 {
		return 0, ErrEmpty
	}
	if len(data) > MaxRecordSize {
		return 0, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(data), MaxRecordSize)
	}
	l.mu.Lock()
	for len(l.pending) >= l.opts.MaxPendingBytes && l.err == nil && !l.stopped {
		ch := l.drainedCh
		l.mu.Unlock()
		<-ch
		l.mu.Lock()
	}
	if err := l.appendErrLocked(); err != nil {
		l.mu.Unlock()
		return 0, err
	}
	lsn := l.nextLSN
	l.nextLSN++
	l.pending = appendFrame(l.pending, lsn, data)
	l.pendingN++
	n := l.pendingN
	l.mu.Unlock()
	// While the committer gathers a batch, wake it only for the batch's
	// first record and when the batch is complete: 64 appenders waking it
	// 64 times, each taking the lock to count, cost more than the fsync
	// they share.
	if target := l.gatherTarget.Load(); target == 0 || n == 1 || n >= int(target) {
		select {
		case l.kick <- struct{}{}:
		default:
		}
	}
	return lsn, nil
}

func (l *Log) appendErrLocked() error {
	switch {
	case l.err != nil:
		return l.err
	case l.readOnly:
		return ErrReadOnly
	case l.stopped:
		return ErrClosed
	}
	return nil
}

// WaitDurable blocks until the record lsn is durable under the sync policy,
// the log fails, or ctx ends. A record reported durable survives a crash of
// the process (and, under SyncAlways and SyncInterval, of the machine).
func (l *Log) WaitDurable(ctx context.Context, lsn uint64) error {
	for {
		if lsn <= l.durableLSN.Load() {
			return nil
		}
		// No lock on this path: 64 appenders taking it after every fsync
		// cost a fifth of the group commit's rate. The wake channel is read
		// before durableLSN is checked again, so an advance between the two
		// is either seen or closes the channel read.
		ch := *l.wake.Load()
		if lsn <= l.durableLSN.Load() {
			return nil
		}
		if l.terminal.Load() {
			l.mu.Lock()
			durable, err := l.durable, l.err
			stopped := l.stopped && l.pendingN == 0 && l.written == l.durable
			l.mu.Unlock()
			switch {
			case lsn <= durable:
				return nil
			case err != nil:
				return err
			case stopped:
				return ErrClosed
			}
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// AppendSync appends a record and waits until it is durable.
func (l *Log) AppendSync(ctx context.Context, data []byte) (uint64, error) {
	lsn, err := l.Append(data)
	if err != nil {
		return 0, err
	}
	return lsn, l.WaitDurable(ctx, lsn)
}

// DurableLSN returns the last durable LSN (0 when the log is empty).
func (l *Log) DurableLSN() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.durable
}

// Err returns the sticky error, if the log has failed.
func (l *Log) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

// Run commits appends until ctx ends or Close is called, then writes and
// fsyncs what is pending and returns. It also applies retention and, with
// Options.VerifyOnStart, verifies closed segments in the background. It
// returns the sticky error if the log failed.
func (l *Log) Run(ctx context.Context) error {
	if l.readOnly {
		return ErrReadOnly
	}
	if !l.running.CompareAndSwap(false, true) {
		return errors.New("wal: Run called twice")
	}
	defer close(l.done)
	l.mu.Lock()
	if l.stopped {
		l.mu.Unlock()
		return ErrClosed
	}
	l.mu.Unlock()

	bg, cancelBG := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { cancelBG(); wg.Wait() }()
	if l.preallocating() {
		l.needPrepared <- struct{}{}
		wg.Go(func() { l.prepareLoop(bg) })
	}
	if l.opts.VerifyOnStart {
		wg.Go(func() {
			if _, err := l.Verify(bg, true); err != nil && bg.Err() == nil {
				l.logger.Error("wal: background verify failed", "err", err)
			}
		})
	}

	syncTimer := time.NewTimer(time.Hour)
	syncTimer.Stop()
	defer syncTimer.Stop()
	syncArmed := false
	retention := time.NewTicker(l.opts.RetentionCheck)
	defer retention.Stop()
	gatherTimer := time.NewTimer(time.Hour)
	gatherTimer.Stop()
	defer gatherTimer.Stop()

	for {
		select {
		case <-ctx.Done():
			return l.shutdown()
		case <-l.stop:
			return l.shutdown()
		case <-l.kick:
			l.gather(gatherTimer)
		case <-syncTimer.C:
			syncArmed = false
		case <-retention.C:
			l.retain()
		case <-l.rotated:
			l.retain()
		}
		wait, err := l.commit(false)
		if err != nil {
			return err
		}
		if wait > 0 && !syncArmed {
			syncTimer.Reset(wait)
			syncArmed = true
		}
	}
}

// gather lingers briefly under SyncAlways so that the appenders released by
// the previous fsync share the next one. Without it, the first of them to
// re-append triggers an fsync of one record while the rest queue behind it,
// halving the batch size (the reasoning of PostgreSQL's commit_delay, made
// adaptive): wait until as many records are pending as recent batches had,
// at most half the last fsync's duration.
func (l *Log) gather(timer *time.Timer) {
	target := l.batchPeak
	if l.opts.Sync != SyncAlways || target < 2 {
		l.gatherTarget.Store(0)
		return
	}
	l.gatherTarget.Store(int64(target))
	linger := min(l.syncTook/2, time.Millisecond)
	timer.Reset(linger)
	defer timer.Stop()
	for {
		l.mu.Lock()
		n := l.pendingN
		l.mu.Unlock()
		if n >= target {
			return
		}
		select {
		case <-l.kick:
		case <-timer.C:
			return
		}
	}
}

func (l *Log) retain() {
	if _, err := l.ApplyRetention(); err != nil {
		l.logger.Error("wal: retention failed", "err", err)
	}
}

// shutdown refuses further appends, commits and fsyncs what is pending.
func (l *Log) shutdown() error {
	l.mu.Lock()
	l.stopped = true
	l.mu.Unlock()
	_, err := l.commit(true)
	l.mu.Lock()
	l.terminal.Store(true)
	l.wakeWaitersLocked() // so that they see the final state
	close(l.drainedCh)
	l.drainedCh = make(chan struct{})
	l.mu.Unlock()
	return err
}

// commit writes the pending batch and syncs according to the policy (always
// when final). It returns how long to wait before an interval sync is due.
func (l *Log) commit(final bool) (time.Duration, error) {
	l.mu.Lock()
	if l.err != nil {
		l.mu.Unlock()
		return 0, l.err
	}
	var batch []byte
	n := l.pendingN
	last := l.nextLSN - 1
	if n > 0 {
		// Double-buffered: appenders fill one buffer while the other is written.
		batch = l.pending
		l.pending, l.pendingN = l.spare[:0], 0
		l.spare = nil
		close(l.drainedCh)
		l.drainedCh = make(chan struct{})
	}
	seg := l.segs[len(l.segs)-1]
	full := seg.size >= l.opts.SegmentSize && seg.size > headerSize
	// Move off a segment that was not preallocated as soon as a spare is
	// ready (after a fresh start), so that fsyncs get cheap early.
	full = full || (l.prepared && !seg.preallocated && seg.size > headerSize)
	l.mu.Unlock()

	if n > 0 {
		if full {
			var err error
			if seg, err = l.rotate(seg, last-uint64(n)+1); err != nil {
				return 0, l.fail(err)
			}
		}
		if _, err := l.active.WriteAt(batch, seg.size); err != nil {
			return 0, l.fail(opError("write", seg.path, err))
		}
		l.mu.Lock()
		seg.size += int64(len(batch))
		l.written = last
		l.counters.Appends += uint64(n)
		l.counters.Batches++
		l.mu.Unlock()
		l.spare = batch[:0]
		// A decaying peak of the batch size: the number of appenders that
		// usually share an fsync. It decays by at least one per batch, so
		// a burst never leaves a lone appender lingering for long.
		l.batchPeak = max(n, l.batchPeak-1-l.batchPeak/16)
	}

	l.mu.Lock()
	unsynced := l.written > l.durable
	l.mu.Unlock()
	if !unsynced {
		return 0, nil
	}
	switch {
	case final || l.opts.Sync == SyncAlways:
		return 0, l.sync(seg)
	case l.opts.Sync == SyncNever:
		l.mu.Lock()
		seg.durable = seg.size
		wake := l.advanceLocked(l.written)
		l.mu.Unlock()
		wakeUp(wake)
		return 0, nil
	default:
		due := l.lastSync.Add(l.opts.SyncInterval)
		if wait := time.Until(due); wait > 0 {
			return wait, nil
		}
		return 0, l.sync(seg)
	}
}

// sync fsyncs the active segment and publishes the new durable point.
func (l *Log) sync(seg *segment) error {
	l.mu.Lock()
	target, off := l.written, seg.size
	l.mu.Unlock()
	start := time.Now()
	if err := l.active.Sync(); err != nil {
		return l.fail(opError("fsync", seg.path, err))
	}
	l.lastSync = time.Now()
	l.syncTook = l.lastSync.Sub(start)
	l.mu.Lock()
	seg.durable = off
	l.counters.Syncs++
	l.counters.SyncNanos += uint64(l.lastSync.Sub(start))
	wake := l.advanceLocked(target)
	l.mu.Unlock()
	wakeUp(wake)
	return nil
}

// advanceLocked publishes lsn as durable. It returns the wake channel to
// close once the lock is released, or nil.
func (l *Log) advanceLocked(lsn uint64) chan struct{} {
	if lsn <= l.durable {
		return nil
	}
	l.durable = lsn
	l.durableLSN.Store(lsn)
	return l.swapWake()
}

func wakeUp(ch chan struct{}) {
	if ch != nil {
		close(ch)
	}
}

// rotate closes the active segment (fsynced, so only the last segment can
// ever have a torn tail) and starts a new one at first.
func (l *Log) rotate(old *segment, first uint64) (*segment, error) {
	if err := l.sync(old); err != nil {
		return nil, err
	}
	if err := l.closeActive(old); err != nil {
		return nil, err
	}
	seg, f, err := l.usePrepared(first)
	if err == nil && f == nil {
		seg, f, err = l.createSegment(first)
	}
	if err != nil {
		return nil, err
	}
	l.active = f
	l.mu.Lock()
	old.closed = true
	old.last = first - 1
	old.modTime = l.opts.Now()
	l.segs = append(l.segs, seg)
	l.counters.Rotations++
	l.mu.Unlock()
	select {
	case l.rotated <- struct{}{}:
	default:
	}
	return seg, nil
}

// closeActive cuts the active segment's preallocated zeros (a closed
// segment ends at its last record), makes that durable and closes it.
func (l *Log) closeActive(seg *segment) error {
	fi, err := l.active.Stat()
	if err != nil {
		return fmt.Errorf("stat %s: %w", seg.path, err)
	}
	if fi.Size() > seg.size {
		if err := l.active.Truncate(seg.size); err != nil {
			return fmt.Errorf("truncate %s: %w", seg.path, err)
		}
		if err := l.active.Sync(); err != nil {
			return opError("fsync", seg.path, err)
		}
	}
	err = l.active.Close()
	l.active = nil
	if err != nil {
		return fmt.Errorf("close %s: %w", seg.path, err)
	}
	return nil
}

// createSegment creates, fsyncs and links a new empty segment.
func (l *Log) createSegment(first uint64) (*segment, File, error) {
	path := filepath.Join(l.dir, segmentName(first))
	f, err := l.fs.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_RDWR, 0o640)
	if err != nil {
		return nil, nil, fmt.Errorf("create segment: %w", err)
	}
	hdr := segmentHeader{FirstLSN: first, Created: l.opts.Now().UnixNano()}.encode()
	if _, err := f.Write(hdr); err != nil {
		f.Close()
		return nil, nil, opError("write", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, nil, opError("fsync", path, err)
	}
	if err := l.fs.SyncDir(l.dir); err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("fsync directory %s: %w", l.dir, err)
	}
	return &segment{first: first, path: path, size: headerSize, durable: headerSize, modTime: l.opts.Now()}, f, nil
}

// fail makes err sticky, wakes every waiter and tries to cut the active
// segment back to its durable end, so that records whose append reported an
// error do not come back after a restart.
func (l *Log) fail(err error) error {
	l.mu.Lock()
	if l.err == nil {
		l.err = fmt.Errorf("%w: %w", ErrFailed, err)
		l.terminal.Store(true)
		l.wakeWaitersLocked()
		close(l.drainedCh)
		l.drainedCh = make(chan struct{})
	}
	sticky := l.err
	seg := l.segs[len(l.segs)-1]
	durable := seg.durable
	l.mu.Unlock()
	l.logger.Error("wal: log failed; appends stop until restart", "err", err)
	if l.active != nil {
		if terr := l.active.Truncate(durable); terr != nil {
			l.logger.Error("wal: cannot cut back to the durable end", "segment", seg.path, "offset", durable, "err", terr)
		} else if serr := l.active.Sync(); serr != nil {
			l.logger.Error("wal: cannot fsync the cut", "segment", seg.path, "err", serr)
		}
	}
	return sticky
}

// Close stops the committer (if Run is running), commits and fsyncs pending
// records and closes the files. It is idempotent.
func (l *Log) Close() error {
	l.closeOnce.Do(func() {
		switch {
		case l.readOnly:
		case l.running.CompareAndSwap(false, true): // Run never started; it must not start now
			close(l.done)
			l.closeErr = l.shutdown()
		default:
			close(l.stop)
			<-l.done
		}
		if l.active != nil {
			l.mu.Lock()
			seg, failed := l.segs[len(l.segs)-1], l.err != nil
			l.mu.Unlock()
			var err error
			if failed {
				err = l.active.Close()
				l.active = nil
			} else {
				// A clean stop leaves no preallocated zeros behind.
				err = l.closeActive(seg)
			}
			if err != nil && l.closeErr == nil {
				l.closeErr = err
			}
		}
		l.mu.Lock()
		l.stopped = true
		if l.closeErr == nil && l.err != nil {
			l.closeErr = l.err
		}
		l.mu.Unlock()
	})
	return l.closeErr
}

// statFile returns the size and modification time of path.
func (l *Log) statFile(path string) (fs.FileInfo, error) {
	f, err := l.fs.OpenFile(path, os.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.Stat()
}
