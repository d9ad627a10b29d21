package waltest

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"

	"github.com/edged-io/edged/wal"
)

// ErrInjected is the error ErrorFS returns for the operation it fails.
var ErrInjected = errors.New("waltest: injected I/O error")

// ErrorFS wraps an FS and fails its k-th mutating operation (write, sync,
// truncate, create, rename, link, remove, directory sync), counting from 1.
// A failed operation has no effect, except a failed Write, which writes
// the first half of its buffer (a short write) before failing. With
// Persistent, every mutating operation from the k-th on fails.
type ErrorFS struct {
	FS         wal.FS
	FailAt     int // 0 = never fail; change it with Arm once in use
	Persistent bool

	mu    sync.Mutex
	ops   int
	fired bool
}

var _ wal.FS = (*ErrorFS)(nil)

// Ops is the number of mutating operations seen so far (to size a sweep).
func (e *ErrorFS) Ops() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.ops
}

// Arm sets FailAt and Persistent while the file system is in use.
func (e *ErrorFS) Arm(failAt int, persistent bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.FailAt, e.Persistent = failAt, persistent
}

// Fired reports whether an error has been injected.
func (e *ErrorFS) Fired() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.fired
}

func (e *ErrorFS) fail(op, name string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.ops++
	if e.FailAt > 0 && (e.ops == e.FailAt || (e.Persistent && e.ops > e.FailAt)) {
		e.fired = true
		return &fs.PathError{Op: op, Path: name, Err: fmt.Errorf("%w (operation %d)", ErrInjected, e.ops)}
	}
	return nil
}

func (e *ErrorFS) OpenFile(name string, flag int, perm fs.FileMode) (wal.File, error) {
	if flag&(os.O_WRONLY|os.O_RDWR|os.O_CREATE) != 0 {
		if err := e.fail("open", name); err != nil {
			return nil, err
		}
	}
	f, err := e.FS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return &errorFile{File: f, fs: e, name: name}, nil
}

func (e *ErrorFS) Remove(name string) error {
	if err := e.fail("remove", name); err != nil {
		return err
	}
	return e.FS.Remove(name)
}

func (e *ErrorFS) Rename(oldname, newname string) error {
	if err := e.fail("rename", oldname); err != nil {
		return err
	}
	return e.FS.Rename(oldname, newname)
}

func (e *ErrorFS) Link(oldname, newname string) error {
	if err := e.fail("link", oldname); err != nil {
		return err
	}
	return e.FS.Link(oldname, newname)
}

func (e *ErrorFS) MkdirAll(dir string, perm fs.FileMode) error { return e.FS.MkdirAll(dir, perm) }
func (e *ErrorFS) ReadDir(dir string) ([]string, error)        { return e.FS.ReadDir(dir) }

func (e *ErrorFS) SyncDir(dir string) error {
	if err := e.fail("syncdir", dir); err != nil {
		return err
	}
	return e.FS.SyncDir(dir)
}

type errorFile struct {
	wal.File
	fs   *ErrorFS
	name string
}

func (f *errorFile) Write(p []byte) (int, error) {
	if err := f.fs.fail("write", f.name); err != nil {
		n, _ := f.File.Write(p[:len(p)/2])
		return n, err
	}
	return f.File.Write(p)
}

func (f *errorFile) WriteAt(p []byte, off int64) (int, error) {
	if err := f.fs.fail("writeat", f.name); err != nil {
		n, _ := f.File.WriteAt(p[:len(p)/2], off)
		return n, err
	}
	return f.File.WriteAt(p, off)
}

func (f *errorFile) Sync() error {
	if err := f.fs.fail("sync", f.name); err != nil {
		return err
	}
	return f.File.Sync()
}

func (f *errorFile) Truncate(size int64) error {
	if err := f.fs.fail("truncate", f.name); err != nil {
		return err
	}
	return f.File.Truncate(size)
}
