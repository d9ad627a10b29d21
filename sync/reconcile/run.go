package reconcile

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/influxdata/influxdb-client-go/v2/api/write"
	"golang.org/x/sync/errgroup"
)

// ErrUnknownDevice reports a requested device that has no edged_progress
// point in the store.
var ErrUnknownDevice = errors.New("reconcile: unknown device")

// Job is the batch layer and the serving query against one InfluxDB
// bucket. It keeps no state between runs: everything it needs is in the
// store. Its methods are safe for concurrent use.
type Job struct {
	o         Options
	st        *store
	closeOnce sync.Once
}

// New returns a Job for the options. It starts no goroutines and makes no
// request: an unreachable store shows up in Run or Query.
func New(o Options) (*Job, error) {
	n, err := o.normalize()
	if err != nil {
		return nil, err
	}
	return &Job{o: n, st: openStore(&n)}, nil
}

// Close releases the HTTP client. It is idempotent.
func (j *Job) Close() { j.closeOnce.Do(j.st.Close) }

// testHookWindow, when set by a test, runs before each window.
var testHookWindow func()

// counters are shared by the device workers and the progress line.
type counters struct {
	done, total, devicesDone atomic.Int64
}

// Run reconciles every selected device (see the package documentation) and
// returns the report, also when it returns an error: a *StoreError when
// the store failed (the first such failure; other devices still ran),
// ErrUnknownDevice, or the context's error when the run was stopped early
// (cancelled between windows: what was computed is written, the next run
// continues). Drift is not an error: see Report.Total.Drift.
func (j *Job) Run(ctx context.Context) (*Report, error) {
	start := j.o.Now()
	rep := &Report{Started: start.UTC(), DryRun: j.o.DryRun, Full: j.o.Full, Devices: []*DeviceReport{}, Drift: []Result{}}
	finish := func(err error) (*Report, error) {
		rep.Finished = j.o.Now().UTC()
		rep.Seconds = rep.Finished.Sub(rep.Started).Seconds()
		if rep.Seconds > 0 {
			rep.WindowsPerSecond = float64(rep.Total.Checked) / rep.Seconds
		}
		rep.Complete = err == nil && len(rep.Errors) == 0
		if err != nil && !slices.ContainsFunc(rep.Errors, func(e string) bool { return strings.HasSuffix(e, err.Error()) }) {
			rep.Errors = append(rep.Errors, err.Error())
		}
		return rep, err
	}

	pos, err := j.st.positions(ctx)
	if err != nil {
		return finish(err)
	}
	var devices []string
	if len(j.o.Devices) > 0 {
		for _, d := range j.o.Devices {
			if p := pos[d]; p == nil || !p.HasThrough {
				return finish(fmt.Errorf("%w: %q has no %s point in bucket %s", ErrUnknownDevice, d, mProgress, j.o.Bucket))
			}
			devices = append(devices, d)
		}
	} else {
		for d, p := range pos {
			if p.HasThrough {
				devices = append(devices, d)
			}
		}
	}
	slices.Sort(devices)
	devices = slices.Compact(devices)
	j.o.Logger.Info("reconcile: run", "devices", len(devices), "parallel", j.o.Parallel, "full", j.o.Full)

	var c counters
	stopProgress := j.startProgress(&c, len(devices), start)
	reports := make([]*DeviceReport, len(devices))
	drifts := make([][]Result, len(devices))
	errs := make([]error, len(devices))
	var g errgroup.Group
	g.SetLimit(j.o.Parallel)
	for i, d := range devices {
		g.Go(func() error {
			reports[i], drifts[i], errs[i] = j.device(ctx, d, pos[d], &c)
			c.devicesDone.Add(1)
			return nil
		})
	}
	_ = g.Wait()
	stopProgress()

	var storeErr, otherErr error
	for i, dr := range reports {
		rep.Devices = append(rep.Devices, dr)
		rep.Total.add(dr.Tally)
		rep.Drift = append(rep.Drift, drifts[i]...)
		err := errs[i]
		switch {
		case err == nil:
			continue
		case isStoreError(err):
			storeErr = cmp.Or(storeErr, err)
			rep.Errors = append(rep.Errors, fmt.Sprintf("device %s: %v", devices[i], err))
		default:
			otherErr = cmp.Or(otherErr, err)
		}
		dr.Error = err.Error()
	}
	firstErr := cmp.Or(storeErr, otherErr)
	if firstErr != nil && !isStoreError(firstErr) {
		firstErr = fmt.Errorf("reconcile: stopped early: %w", firstErr)
	}
	return finish(firstErr)
}

// startProgress prints a progress line every ProgressEvery until the
// returned function is called (which waits for the printer to stop).
func (j *Job) startProgress(c *counters, devices int, start time.Time) (stop func()) {
	if j.o.Progress == nil {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(j.o.ProgressEvery)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				fmt.Fprintln(j.o.Progress, progressLine(int(c.done.Load()), int(c.total.Load()),
					int(c.devicesDone.Load()), devices, j.o.Now().Sub(start)))
			}
		}
	})
	return func() {
		close(done)
		wg.Wait()
	}
}

// chunk is a time range of one device read at once, with the candidate
// windows inside it.
type chunk struct {
	start, end int64
	windows    []candidate
}

// planChunks groups the candidates, in order of start, into time ranges
// at most span long (a longer window gets a range of its own).
func planChunks(cands []candidate, span time.Duration) []chunk {
	slices.SortFunc(cands, func(a, b candidate) int {
		return cmp.Or(cmp.Compare(a.Start, b.Start), compareKeys(a.windowKey, b.windowKey))
	})
	var out []chunk
	for _, c := range cands {
		end := c.Start + int64(c.Size)
		if n := len(out); n > 0 {
			cur := &out[n-1]
			if newEnd := max(cur.end, end); newEnd-cur.start <= int64(span) {
				cur.end = newEnd
				cur.windows = append(cur.windows, c)
				continue
			}
		}
		out = append(out, chunk{start: c.Start, end: end, windows: []candidate{c}})
	}
	return out
}

// device reconciles one device's changed windows.
func (j *Job) device(ctx context.Context, dev string, p *devicePosition, c *counters) (*DeviceReport, []Result, error) {
	t0 := time.Now()
	dr := &DeviceReport{Device: dev, ThroughLSN: p.Through, PreviousLSN: p.Marker, MarkerLSN: p.Marker}
	defer func() { dr.Seconds = time.Since(t0).Seconds() }()
	through := p.Through

	after := int64(-1)
	switch {
	case p.HasMarker && p.Marker > through:
		// The device's LSNs went back (its log was reset): every window
		// is looked at again.
		j.o.Logger.Warn("reconcile: through_lsn is below the job's marker; rescanning the device",
			"device", dev, "through_lsn", through, "marker", p.Marker)
	case p.HasMarker && !j.o.Full:
		after = int64(p.Marker)
	}
	since := int64(math.MinInt64)
	if j.o.Since > 0 {
		since = j.o.Now().Add(-j.o.Since).UnixNano()
	}
	cands, err := j.st.candidates(ctx, dev, j.o.View, after, since)
	if err != nil {
		return dr, nil, err
	}
	dr.Candidates = len(cands)

	// marker is where the next run takes up: every window it has not
	// finished must keep applied_lsn > marker.
	marker := through
	hold := func(applied float64) {
		if m := math.Ceil(applied) - 1; m < float64(marker) {
			marker = uint64(max(m, 0))
		}
	}
	var ready []candidate
	for _, cd := range cands {
		if !shipped(cd.Applied, through) {
			dr.Pending++ // the shipper has not passed the edge's latest event
			continue
		}
		ready = append(ready, cd)
	}
	c.total.Add(int64(len(ready)))

	gaps, err := j.st.gaps(ctx, dev)
	if err != nil {
		return dr, nil, err
	}
	var drift []Result
	for _, ch := range planChunks(ready, j.o.ChunkSpan) {
		if err := ctx.Err(); err != nil {
			return dr, drift, err
		}
		data, err := j.st.chunk(ctx, dev, j.o.View, ch.start, ch.end)
		if err != nil {
			return dr, drift, err
		}
		var pts []*write.Point
		var stopErr error
		for _, cd := range ch.windows {
			if stopErr = ctx.Err(); stopErr != nil {
				break // between windows: write what is computed, then stop
			}
			c.done.Add(1)
			if testHookWindow != nil {
				testHookWindow()
			}
			row := data.rows[cd.windowKey]
			if row == nil {
				continue // the row went away (e.g. deleted): nothing to reconcile
			}
			applied := row.appliedLSN()
			if !shipped(applied, through) {
				dr.Pending++
				continue
			}
			ex := computeExact(inWindow(data.raw[row.Series], row.Start, row.End()))
			// A raw reading newer than the edge's latest event for the
			// window was refused by the edge (the window had closed), and
			// the amendment counting it is not in the store yet.
			if ex.Count > 0 && float64(ex.MaxLSN) > math.Floor(applied) {
				dr.Pending++
				hold(applied)
				continue
			}
			var gapErr error
			finder := j.gapFinder(ctx, dev, row, data, gaps, &gapErr)
			res := reconcileWindow(dev, row, &ex, spanLow(row, &ex), finder)
			if gapErr != nil {
				return dr, drift, gapErr
			}
			// A reading refused after the window closed in the same record
			// that closed it has the window's close LSN; its amendment
			// comes with a later record.
			if res.Status == StatusDrift && ex.Count > 0 && float64(ex.MaxLSN) == applied {
				dr.Pending++
				hold(applied)
				continue
			}
			res.ReconciledThroughLSN = through
			dr.count(&res)
			if res.Status == StatusDrift {
				drift = append(drift, res)
			}
			if sameRecord(data.recs[row.windowKey], recordFields(&res)) {
				dr.Unchanged++
				continue
			}
			pts = append(pts, resultPoints(&res)...)
		}
		if err := j.writeDetached(ctx, pts); err != nil {
			return dr, drift, err
		}
		if !j.o.DryRun {
			dr.Written += len(pts)
		}
		if stopErr != nil {
			return dr, drift, stopErr
		}
	}
	dr.MarkerLSN = marker
	if !p.HasMarker || marker != p.Marker {
		if err := j.writeDetached(ctx, []*write.Point{markerPoint(dev, marker, j.o.Now())}); err != nil {
			return dr, drift, err
		}
		if !j.o.DryRun {
			dr.Written++
		}
	}
	return dr, drift, nil
}

// writeDetached writes computed points even if ctx was just cancelled (a
// stop between windows keeps the work done), bounded by the HTTP timeout.
func (j *Job) writeDetached(ctx context.Context, pts []*write.Point) error {
	if len(pts) == 0 || j.o.DryRun {
		return nil
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), j.o.HTTPTimeout)
	defer cancel()
	return j.st.writePoints(wctx, pts)
}

// spanLow is a lower bound of the LSNs at which the edge folded readings
// into the window, as far as the store shows: the smallest LSN of its raw
// readings (the window was open then), else its close LSN. gapFinder
// extends it down to the previous window's close when needed.
func spanLow(row *edgeRow, ex *exact) uint64 {
	lo := row.closeLSN()
	if ex.Count > 0 && ex.MinLSN < lo {
		lo = ex.MinLSN
	}
	return lo
}

// gapFinder returns the function reconcileWindow asks whether a WAL gap
// overlaps the window's LSN span [lo, hi]. The span reaches down to just
// after the close of the previous window of the same series and size
// (readings the edge folded into this window arrived after that close, or
// while this window already held readings, which lo covers). A gap wholly
// before that is not an explanation: it never over-explains.
func (j *Job) gapFinder(ctx context.Context, dev string, row *edgeRow, data *chunkData, gaps []gap, errp *error) gapFinder {
	return func(lo, hi uint64) (gap, bool) {
		var below bool
		for _, g := range gaps {
			if g.From <= hi && g.To >= lo {
				return g, true
			}
			if g.From <= hi && g.To < lo {
				below = true
			}
		}
		if !below {
			return gap{}, false
		}
		prev, ok := previousInChunk(row, data)
		if !ok {
			var err error
			prev, ok, err = j.st.previousClose(ctx, dev, row.windowKey)
			if err != nil {
				*errp = err
				return gap{}, false
			}
		}
		if !ok {
			prev = 0
		}
		for _, g := range gaps {
			if g.From <= hi && g.To > prev {
				return g, true
			}
		}
		return gap{}, false
	}
}

// previousInChunk finds the close LSN of the latest window of the same
// series, size and view before row among the rows read.
func previousInChunk(row *edgeRow, data *chunkData) (uint64, bool) {
	var keys []windowKey
	for k, r := range data.rows {
		if k.Series == row.Series && k.Window == row.Window && k.View == row.View && k.Start < row.Start && !math.IsNaN(r.get("close_lsn")) {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return 0, false
	}
	// Any window between the latest one read and row would have been
	// read too: the chunk covers the time from that one to row.
	sort.Slice(keys, func(a, b int) bool { return keys[a].Start > keys[b].Start })
	return data.rows[keys[0]].closeLSN(), true
}

// shipped reports whether an edge event with applied mark applied (LSN, or
// LSN + ½ for an amendment emitted by record LSN) is in the store: its
// record is at or below the shipped-through LSN.
func shipped(applied float64, through uint64) bool {
	return math.Floor(applied) <= float64(through) // false for NaN
}
