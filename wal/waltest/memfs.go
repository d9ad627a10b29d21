// Package waltest provides file systems for fault-injection tests of the
// write-ahead log: MemFS, an in-memory file system that forgets unsynced
// writes and unsynced directory entries on Crash, and ErrorFS, which fails
// the k-th operation of a workload, once or from then on.
package waltest

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/edged-io/edged/wal"
)

// MemFS is an in-memory file system with crash semantics modelled on a
// careful reading of POSIX: file data is durable only once the file is
// synced; a directory entry (creation, rename, removal) is durable only once
// its directory is synced.
type MemFS struct {
	mu      sync.Mutex
	names   map[string]*inode // the live namespace
	durable map[string]*inode // the namespace as of the last SyncDir of each directory
	dirs    map[string]bool
}

type inode struct {
	data    []byte
	synced  []byte
	modTime time.Time
}

var _ wal.FS = (*MemFS)(nil)

// NewMemFS returns an empty file system.
func NewMemFS() *MemFS {
	return &MemFS{names: map[string]*inode{}, durable: map[string]*inode{}, dirs: map[string]bool{"/": true, ".": true}}
}

// Crash returns the file system as a machine would find it after power
// loss: only synced directory entries, each file with only its synced data.
// With a non-nil rng, each file also keeps a random prefix of the data
// written after its last sync (the sectors that happened to reach the
// disk), which is how torn tails arise. The receiver is left unchanged.
func (m *MemFS) Crash(rng *rand.Rand) *MemFS {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := NewMemFS()
	for d := range m.dirs {
		n.dirs[d] = true
	}
	copies := map[*inode]*inode{}
	for name, ino := range m.durable {
		c, ok := copies[ino]
		if !ok {
			data := crashedContent(ino, rng)
			c = &inode{data: data, synced: bytes.Clone(data), modTime: ino.modTime}
			copies[ino] = c
		}
		n.names[name] = c
		n.durable[name] = c
	}
	return n
}

// crashedContent is what survives of a file: its synced content, and with
// rng, the unsynced writes up to a random point past the first byte that
// differs from it (writes reach the disk in order, up to the power cut).
func crashedContent(ino *inode, rng *rand.Rand) []byte {
	data := bytes.Clone(ino.synced)
	if rng == nil {
		return data
	}
	d := 0
	for d < len(ino.data) && d < len(ino.synced) && ino.data[d] == ino.synced[d] {
		d++
	}
	if d == len(ino.data) {
		return data
	}
	keep := d + rng.IntN(len(ino.data)-d+1)
	if keep > len(data) {
		data = append(data, make([]byte, keep-len(data))...)
	}
	copy(data[d:keep], ino.data[d:keep])
	return data
}

// Snapshot returns a copy of the file system as it is now, synced or not
// (what a restarted process sees when the machine stayed up).
func (m *MemFS) Snapshot() *MemFS {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := NewMemFS()
	for d := range m.dirs {
		n.dirs[d] = true
	}
	for name, ino := range m.names {
		c := &inode{data: bytes.Clone(ino.data), modTime: ino.modTime}
		c.synced = bytes.Clone(c.data)
		n.names[name] = c
		n.durable[name] = c
	}
	return n
}

// ReadFile returns a file's current content.
func (m *MemFS) ReadFile(name string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	ino, ok := m.names[filepath.Clean(name)]
	if !ok {
		return nil, &fs.PathError{Op: "read", Path: name, Err: fs.ErrNotExist}
	}
	return bytes.Clone(ino.data), nil
}

// WriteFile replaces a file's content, durably (for planting damage).
func (m *MemFS) WriteFile(name string, data []byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	name = filepath.Clean(name)
	ino, ok := m.names[name]
	if !ok {
		ino = &inode{}
		m.names[name] = ino
		m.durable[name] = ino
	}
	ino.data, ino.synced = bytes.Clone(data), bytes.Clone(data)
	ino.modTime = time.Now()
}

func (m *MemFS) OpenFile(name string, flag int, perm fs.FileMode) (wal.File, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	name = filepath.Clean(name)
	if !m.dirs[filepath.Dir(name)] {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	ino, ok := m.names[name]
	switch {
	case ok && flag&os.O_CREATE != 0 && flag&os.O_EXCL != 0:
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrExist}
	case !ok && flag&os.O_CREATE == 0:
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	case !ok:
		ino = &inode{modTime: time.Now()}
		m.names[name] = ino
	}
	if flag&os.O_TRUNC != 0 {
		ino.data = nil
	}
	return &memFile{fs: m, ino: ino, name: name, writable: flag&(os.O_WRONLY|os.O_RDWR) != 0, append: flag&os.O_APPEND != 0}, nil
}

func (m *MemFS) Remove(name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	name = filepath.Clean(name)
	if _, ok := m.names[name]; !ok {
		return &fs.PathError{Op: "remove", Path: name, Err: fs.ErrNotExist}
	}
	delete(m.names, name)
	return nil
}

func (m *MemFS) Rename(oldname, newname string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	oldname, newname = filepath.Clean(oldname), filepath.Clean(newname)
	ino, ok := m.names[oldname]
	if !ok {
		return &fs.PathError{Op: "rename", Path: oldname, Err: fs.ErrNotExist}
	}
	if !m.dirs[filepath.Dir(newname)] {
		return &fs.PathError{Op: "rename", Path: newname, Err: fs.ErrNotExist}
	}
	delete(m.names, oldname)
	m.names[newname] = ino
	return nil
}

func (m *MemFS) Link(oldname, newname string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	oldname, newname = filepath.Clean(oldname), filepath.Clean(newname)
	ino, ok := m.names[oldname]
	if !ok {
		return &fs.PathError{Op: "link", Path: oldname, Err: fs.ErrNotExist}
	}
	if _, ok := m.names[newname]; ok {
		return &fs.PathError{Op: "link", Path: newname, Err: fs.ErrExist}
	}
	m.names[newname] = ino
	return nil
}

func (m *MemFS) MkdirAll(dir string, perm fs.FileMode) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for d := filepath.Clean(dir); !m.dirs[d]; d = filepath.Dir(d) {
		m.dirs[d] = true // directories themselves are always durable here
	}
	return nil
}

func (m *MemFS) ReadDir(dir string) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	dir = filepath.Clean(dir)
	if !m.dirs[dir] {
		return nil, &fs.PathError{Op: "readdir", Path: dir, Err: fs.ErrNotExist}
	}
	seen := map[string]bool{}
	for name := range m.names {
		if filepath.Dir(name) == dir {
			seen[filepath.Base(name)] = true
		}
	}
	for d := range m.dirs {
		if d != dir && filepath.Dir(d) == dir {
			seen[filepath.Base(d)] = true
		}
	}
	var names []string
	for n := range seen {
		names = append(names, n)
	}
	sort.Strings(names)
	return names, nil
}

func (m *MemFS) SyncDir(dir string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	dir = filepath.Clean(dir)
	for name := range m.durable {
		if filepath.Dir(name) == dir {
			delete(m.durable, name)
		}
	}
	for name, ino := range m.names {
		if filepath.Dir(name) == dir {
			m.durable[name] = ino
		}
	}
	return nil
}

type memFile struct {
	fs       *MemFS
	ino      *inode
	name     string
	writable bool
	append   bool
	pos      int64 // write offset when not appending
	closed   bool
}

var errClosedFile = errors.New("waltest: file already closed")

func (f *memFile) Write(p []byte) (int, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if f.closed {
		return 0, errClosedFile
	}
	if !f.writable {
		return 0, &fs.PathError{Op: "write", Path: f.name, Err: fs.ErrPermission}
	}
	if f.append {
		f.pos = int64(len(f.ino.data))
	}
	if gap := f.pos - int64(len(f.ino.data)); gap > 0 {
		f.ino.data = append(f.ino.data, make([]byte, gap)...)
	}
	n := copy(f.ino.data[f.pos:], p)
	f.ino.data = append(f.ino.data, p[n:]...)
	f.pos += int64(len(p))
	f.ino.modTime = time.Now()
	return len(p), nil
}

func (f *memFile) WriteAt(p []byte, off int64) (int, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if f.closed {
		return 0, errClosedFile
	}
	if !f.writable || f.append {
		return 0, &fs.PathError{Op: "writeat", Path: f.name, Err: fs.ErrPermission}
	}
	if gap := off - int64(len(f.ino.data)); gap > 0 {
		f.ino.data = append(f.ino.data, make([]byte, gap)...)
	}
	n := copy(f.ino.data[off:], p)
	f.ino.data = append(f.ino.data, p[n:]...)
	f.ino.modTime = time.Now()
	return len(p), nil
}

func (f *memFile) ReadAt(p []byte, off int64) (int, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if f.closed {
		return 0, errClosedFile
	}
	if off >= int64(len(f.ino.data)) {
		return 0, io.EOF
	}
	n := copy(p, f.ino.data[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (f *memFile) Sync() error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if f.closed {
		return errClosedFile
	}
	f.ino.synced = bytes.Clone(f.ino.data)
	return nil
}

func (f *memFile) Truncate(size int64) error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if f.closed {
		return errClosedFile
	}
	if size <= int64(len(f.ino.data)) {
		f.ino.data = f.ino.data[:size:size]
	} else {
		f.ino.data = append(f.ino.data, make([]byte, size-int64(len(f.ino.data)))...)
	}
	return nil
}

func (f *memFile) Stat() (fs.FileInfo, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	return fileInfo{name: filepath.Base(f.name), size: int64(len(f.ino.data)), mod: f.ino.modTime}, nil
}

func (f *memFile) Close() error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if f.closed {
		return errClosedFile
	}
	f.closed = true
	return nil
}

type fileInfo struct {
	name string
	size int64
	mod  time.Time
}

func (fi fileInfo) Name() string       { return fi.name }
func (fi fileInfo) Size() int64        { return fi.size }
func (fi fileInfo) Mode() fs.FileMode  { return 0o640 }
func (fi fileInfo) ModTime() time.Time { return fi.mod }
func (fi fileInfo) IsDir() bool        { return false }
func (fi fileInfo) Sys() any           { return nil }

// Names lists every file, for test diagnostics.
func (m *MemFS) Names() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for n := range m.names {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}
