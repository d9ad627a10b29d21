package view

// Versioned views. The views of one aggregate configuration form a
// version, kept in its own directory under the views root (DATA/views):
//
//	DATA/views/ACTIVE            the version the HTTP API reads by default
//	DATA/views/LIVE              the version the daemon writes (at its last start)
//	DATA/views/<version>/<size>/ one tstorage database per window size
//	DATA/views/<version>/series.json
//	DATA/views/.locks/<version>  held (flock) by the one process writing it
//	DATA/views/.snapshots/       private copies for readers (OpenSnapshot)
//
// The daemon writes one version (its live one); edged replay writes
// another, recomputed from the log, beside it. A version has one writer at
// a time (LockVersion); any process may read any version, being written or
// not, through a snapshot.

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/edged-io/edged/wal"
)

// LegacyVersion is the name the unversioned layout of earlier releases
// (DATA/views/<size>/) takes when Migrate moves it.
const LegacyVersion = "v1"

// DefaultKeep is how long the daemon keeps windows in its views.
const DefaultKeep = 30 * 24 * time.Hour

const (
	activeFile  = "ACTIVE"
	liveFile    = "LIVE"
	locksDir    = ".locks"
	snapshotDir = ".snapshots"
	seriesFile  = "series.json"
)

// Errors callers branch on.
var (
	// ErrVersionName reports a version name that is not usable.
	ErrVersionName = errors.New("view: bad version name")
	// ErrNoVersion reports a version that does not exist.
	ErrNoVersion = errors.New("view: no such version")
	// ErrLocked reports a version another process (or another writer in
	// this one) is writing; the error says who.
	ErrLocked = errors.New("view: version in use")
)

var versionName = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_.-]{0,63}$`)

// ValidVersion checks a version name: a letter, then up to 63 letters,
// digits, '_', '.' or '-' (so it never looks like a window size, which
// starts with a digit); not ACTIVE, LIVE or checkpoint… (v1's checkpoint
// files share the directory of the other versions' checkpoints).
func ValidVersion(name string) error {
	if !versionName.MatchString(name) || name == activeFile || name == liveFile || strings.HasPrefix(name, "checkpoint") {
		return fmt.Errorf("%w: %q (a letter, then letters, digits, _ . -; e.g. v2)", ErrVersionName, name)
	}
	return nil
}

// VersionDir is the directory of a version under root.
func VersionDir(root, version string) string { return filepath.Join(root, version) }

// legacyEntry reports whether an entry of root belongs to the
// unversioned layout: a window-size directory or the series index.
func legacyEntry(name string) bool {
	if name == seriesFile {
		return true
	}
	d, err := time.ParseDuration(name)
	return err == nil && d > 0 && name[0] >= '0' && name[0] <= '9'
}

// Migrate moves an unversioned layout (window-size directories and
// series.json directly in root) into root/v1. Each entry moves with one
// rename, so an interrupted migration leaves every entry whole, in one
// place or the other, and the next call finishes it. It reports whether
// anything moved. Call it before opening any version, from the process
// that owns the views (the daemon, edged replay): a process still running
// an older release would go on writing the old paths.
func Migrate(root string) (bool, error) {
	names, err := readDirNames(root)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("view: migrate: %w", err)
	}
	var legacy []string
	for _, n := range names {
		if legacyEntry(n) {
			legacy = append(legacy, n)
		}
	}
	if len(legacy) == 0 {
		return false, nil
	}
	dst := VersionDir(root, LegacyVersion)
	if err := wal.MkdirAll(dst); err != nil {
		return false, fmt.Errorf("view: migrate: %w", err)
	}
	for _, n := range legacy {
		if _, err := os.Lstat(filepath.Join(dst, n)); err == nil {
			return false, fmt.Errorf("view: migrate: both %s and %s exist; move one aside by hand",
				filepath.Join(root, n), filepath.Join(dst, n))
		}
		if err := os.Rename(filepath.Join(root, n), filepath.Join(dst, n)); err != nil {
			return false, fmt.Errorf("view: migrate: %w", err)
		}
	}
	if err := syncDir(dst); err != nil {
		return true, err
	}
	return true, syncDir(root)
}

// VersionInfo describes a version found on disk.
type VersionInfo struct {
	Name  string          `json:"name"`
	Dir   string          `json:"dir"`
	Sizes []time.Duration `json:"-"`
	// Bytes on disk (files under its directory).
	Bytes int64 `json:"bytes"`
	// Series in its index (series.json, written at checkpoints).
	Series int `json:"series"`
	// Holder describes the process writing it, if any.
	Holder string `json:"writer,omitempty"`
}

// Versions lists the versions under root, by name. An unmigrated legacy
// layout is not listed (see Migrate).
func Versions(root string) ([]VersionInfo, error) {
	names, err := readDirNames(root)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("view: %w", err)
	}
	var out []VersionInfo
	for _, n := range names {
		dir := VersionDir(root, n)
		if ValidVersion(n) != nil {
			continue
		}
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
			continue
		}
		info := VersionInfo{Name: n, Dir: dir}
		info.Sizes, _ = Sizes(dir)
		info.Bytes = du(dir)
		if s, err := readSeries(dir); err == nil {
			info.Series = len(s)
		}
		if h, locked := Holder(root, n); locked {
			info.Holder = h
		}
		out = append(out, info)
	}
	return out, nil
}

// Exists reports whether root holds the version.
func Exists(root, version string) bool {
	fi, err := os.Stat(VersionDir(root, version))
	return err == nil && fi.IsDir()
}

// Sizes lists the window sizes that have a database in a version's
// directory, ascending.
func Sizes(dir string) ([]time.Duration, error) {
	names, err := readDirNames(dir)
	if err != nil {
		return nil, fmt.Errorf("view: %w", err)
	}
	var sizes []time.Duration
	for _, n := range names {
		if n == seriesFile || !legacyEntry(n) {
			continue
		}
		d, _ := time.ParseDuration(n)
		if d.String() == n {
			sizes = append(sizes, d)
		}
	}
	slices.Sort(sizes)
	return sizes, nil
}

// Active returns the version recorded in root/ACTIVE, or "" if none is
// (then the daemon's live version is).
func Active(root string) (string, error) { return readName(root, activeFile) }

func readName(root, file string) (string, error) {
	b, err := os.ReadFile(filepath.Join(root, file))
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("view: %w", err)
	}
	v := strings.TrimSpace(string(b))
	if err := ValidVersion(v); err != nil {
		return "", fmt.Errorf("view: %s: %w", filepath.Join(root, file), err)
	}
	return v, nil
}

// SetActive records version as the active one (atomically and durably).
func SetActive(root, version string) error {
	if !Exists(root, version) {
		return fmt.Errorf("%w: %s", ErrNoVersion, version)
	}
	return writeName(root, activeFile, version)
}

// Live returns the version the daemon writes, as it recorded at its last
// start (root/LIVE), or "" if no daemon has.
func Live(root string) (string, error) { return readName(root, liveFile) }

// SetLive records the version the daemon writes.
func SetLive(root, version string) error {
	if err := wal.MkdirAll(root); err != nil {
		return fmt.Errorf("view: %w", err)
	}
	return writeName(root, liveFile, version)
}

func writeName(root, file, version string) error {
	if err := ValidVersion(version); err != nil {
		return err
	}
	if err := wal.WriteFileAtomic(wal.OSFS{}, filepath.Join(root, file), []byte(version+"\n")); err != nil {
		return fmt.Errorf("view: %w", err)
	}
	return nil
}

// Lock is a version's writer lock.
type Lock struct{ f *os.File }

// LockVersion takes the writer lock of a version (an exclusive flock on
// root/.locks/<version>), recording who holds it (say "edged replay"). It
// fails at once with ErrLocked if another process, or another Lock in this
// one, holds it. The lock goes with the process: a crash releases it.
func LockVersion(root, version, who string) (*Lock, error) {
	if err := ValidVersion(version); err != nil {
		return nil, err
	}
	dir := filepath.Join(root, locksDir)
	if err := wal.MkdirAll(dir); err != nil {
		return nil, fmt.Errorf("view: lock: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, version), os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("view: lock: %w", err)
	}
	err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	for try := 0; errors.Is(err, syscall.EWOULDBLOCK) && try < 5; try++ {
		if h, _ := Holder(root, version); h != "" {
			break // a writer, not a Holder call peeking with a shared lock
		}
		time.Sleep(5 * time.Millisecond)
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	}
	if err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			h, _ := Holder(root, version)
			return nil, fmt.Errorf("%w: %s is being written by %s", ErrLocked, version, cmpOr(h, "another process"))
		}
		return nil, fmt.Errorf("view: lock: %w", err)
	}
	f.Truncate(0)
	f.WriteAt([]byte(fmt.Sprintf("%s (pid %d) since %s\n", who, os.Getpid(), time.Now().UTC().Format(time.RFC3339))), 0)
	return &Lock{f}, nil
}

// Unlock releases the lock; it is idempotent.
func (l *Lock) Unlock() error {
	if l == nil || l.f == nil {
		return nil
	}
	l.f.Truncate(0)
	err := l.f.Close() // releases the flock
	l.f = nil
	return err
}

// Holder describes who holds a version's writer lock, and whether anyone
// does.
func Holder(root, version string) (string, bool) {
	path := filepath.Join(root, locksDir, version)
	f, err := os.Open(path)
	if err != nil {
		return "", false
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB); err == nil {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		return "", false
	}
	b, _ := io.ReadAll(io.LimitReader(f, 512))
	return strings.TrimSpace(string(b)), true
}

// RemoveVersion deletes a version's directory and lock file. The caller
// holds its lock (so that no one writes it meanwhile) and has checked that
// it is neither active nor live.
func RemoveVersion(root, version string) error {
	if err := ValidVersion(version); err != nil {
		return err
	}
	if err := os.RemoveAll(VersionDir(root, version)); err != nil {
		return fmt.Errorf("view: %w", err)
	}
	os.Remove(filepath.Join(root, locksDir, version))
	return syncDir(root)
}

// Snapshot is a read-only copy of a version's store, taken by
// OpenSnapshot. It never changes the version it was taken from.
type Snapshot struct {
	*Store
	copy string
}

// OpenSnapshot opens a private copy of the store in dir, a version's
// directory, which another process may be writing: its tstorage partitions
// are hard-linked (they are never rewritten in place; copied where links
// are not possible) and its tstorage write-ahead logs, side store and
// series index copied into root/.snapshots, then opened there. It holds
// what the writer had written when it was taken: the windows it puts into
// its lanes at once (through to the OS), its side store (amended windows)
// and series index as of its last Sync (checkpoint).
// Close removes the copy. Snapshots older than an hour left by crashed
// processes are removed.
func OpenSnapshot(root, dir string) (*Snapshot, error) {
	sizes, err := Sizes(dir)
	if err != nil {
		return nil, err
	}
	base := filepath.Join(root, snapshotDir)
	if err := wal.MkdirAll(base); err != nil {
		return nil, fmt.Errorf("view: snapshot: %w", err)
	}
	removeStale(base, time.Hour)
	cp, err := os.MkdirTemp(base, filepath.Base(dir)+"-")
	if err != nil {
		return nil, fmt.Errorf("view: snapshot: %w", err)
	}
	fail := func(err error) (*Snapshot, error) {
		os.RemoveAll(cp)
		return nil, fmt.Errorf("view: snapshot of %s: %w", dir, err)
	}
	if err := copyFile(filepath.Join(dir, seriesFile), filepath.Join(cp, seriesFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fail(err)
	}
	if err := copyFile(filepath.Join(dir, sideFile), filepath.Join(cp, sideFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fail(err)
	}
	for _, size := range sizes {
		dirs, _, err := laneDirs(dir, size)
		if err != nil {
			return fail(err)
		}
		for _, ldir := range dirs {
			if _, err := snapshotDB(ldir, filepath.Join(cp, filepath.Base(ldir))); err != nil {
				return fail(err)
			}
		}
	}
	// Never expire anything from a copy. Open flushes the copied logs.
	const forever = 100 * 365 * 24 * time.Hour
	st, err := Open(cp, sizes, forever)
	if err != nil {
		return fail(err)
	}
	return &Snapshot{Store: st, copy: cp}, nil
}

// Close closes the copy and removes it.
func (s *Snapshot) Close() error {
	err := s.Store.Close()
	if rerr := os.RemoveAll(s.copy); err == nil {
		err = rerr
	}
	return err
}

// snapshotDB copies one tstorage database: flushed partitions (complete
// once their meta.json exists) by hard link, the write-ahead log by copy.
// It returns the bytes of log copied.
//
// A snapshot is a throwaway copy (removed on Close, or an hour after a
// crash), so its directories are not fsynced: that was two fsyncs a
// generation, some 650 a snapshot after three days of windows.
func snapshotDB(src, dst string) (int64, error) {
	if err := os.MkdirAll(dst, 0o750); err != nil {
		return 0, err
	}
	names, err := readDirNames(src)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	var walBytes int64
	for i, n := range names {
		switch {
		case strings.HasPrefix(n, "p-"):
			if _, err := os.Stat(filepath.Join(src, n, "meta.json")); err != nil {
				continue // being flushed: its points are still in the log
			}
			// A name tstorage never gives (it names partitions by their
			// time range), so that no flush in the copy can open a
			// linked file for writing.
			p := filepath.Join(dst, fmt.Sprintf("p-snapshot-%06d", i))
			if err := os.Mkdir(p, 0o750); err != nil {
				return 0, err
			}
			if err := linkOrCopy(filepath.Join(src, n, "data"), filepath.Join(p, "data")); err != nil && !errors.Is(err, os.ErrNotExist) {
				return 0, err
			}
			if err := copyFile(filepath.Join(src, n, "meta.json"), filepath.Join(p, "meta.json")); err != nil && !errors.Is(err, os.ErrNotExist) {
				return 0, err
			}
		case n == "wal" || n == keepDir:
			// A head being rolled: what its log no longer has is in keep.
			segs, err := readDirNames(filepath.Join(src, n))
			if err != nil && !errors.Is(err, os.ErrNotExist) {
				return 0, err
			}
			if err := os.MkdirAll(filepath.Join(dst, "wal"), 0o750); err != nil {
				return 0, err
			}
			for _, seg := range segs {
				to := filepath.Join(dst, "wal", seg)
				if _, err := strconv.Atoi(seg); err != nil {
					continue
				}
				if _, err := os.Stat(to); err == nil {
					continue
				}
				if err := copyFile(filepath.Join(src, n, seg), to); err != nil && !errors.Is(err, os.ErrNotExist) {
					return 0, err
				}
				if fi, err := os.Stat(to); err == nil {
					walBytes += fi.Size()
				}
			}
		default:
			if _, ok := genNumber(n); ok {
				b, err := snapshotDB(filepath.Join(src, n), filepath.Join(dst, n))
				if err != nil {
					return 0, err
				}
				walBytes += b
			}
		}
	}
	return walBytes, nil
}

func linkOrCopy(src, dst string) error {
	if err := os.Link(src, dst); err == nil {
		return nil
	}
	return copyFile(src, dst)
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func removeStale(base string, age time.Duration) {
	names, _ := readDirNames(base)
	for _, n := range names {
		p := filepath.Join(base, n)
		if fi, err := os.Stat(p); err == nil && time.Since(fi.ModTime()) > age {
			os.RemoveAll(p)
		}
	}
}

func readDirNames(dir string) ([]string, error) {
	es, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(es))
	for i, e := range es {
		names[i] = e.Name()
	}
	return names, nil
}

func readSeries(dir string) ([]SeriesInfo, error) {
	b, err := os.ReadFile(filepath.Join(dir, seriesFile))
	if err != nil {
		return nil, err
	}
	var list []SeriesInfo
	return list, json.Unmarshal(b, &list)
}

func du(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

func syncDir(dir string) error {
	if err := (wal.OSFS{}).SyncDir(dir); err != nil {
		return fmt.Errorf("view: %w", err)
	}
	return nil
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
