package wal

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// FS is the file system the log works on. The default is the operating
// system's; tests substitute one that fails operations or forgets unsynced
// writes (package waltest).
type FS interface {
	// OpenFile opens a file like os.OpenFile.
	OpenFile(name string, flag int, perm fs.FileMode) (File, error)
	Remove(name string) error
	Rename(oldname, newname string) error
	// Link makes newname a second name of oldname's file.
	Link(oldname, newname string) error
	MkdirAll(dir string, perm fs.FileMode) error
	// ReadDir lists the names in dir, sorted.
	ReadDir(dir string) ([]string, error)
	// SyncDir makes the entries of dir (creations, renames, removals) durable.
	SyncDir(dir string) error
}

// File is an open file of an FS.
type File interface {
	io.Writer
	io.WriterAt
	io.ReaderAt
	io.Closer
	// Sync makes the file's written data durable.
	Sync() error
	Truncate(size int64) error
	Stat() (fs.FileInfo, error)
}

// OSFS is the operating system's file system. Sync uses fdatasync.
type OSFS struct{}

var _ FS = OSFS{}

func (OSFS) OpenFile(name string, flag int, perm fs.FileMode) (File, error) {
	f, err := os.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return osFile{f}, nil
}

func (OSFS) Remove(name string) error                    { return os.Remove(name) }
func (OSFS) Rename(oldname, newname string) error        { return os.Rename(oldname, newname) }
func (OSFS) Link(oldname, newname string) error          { return os.Link(oldname, newname) }
func (OSFS) MkdirAll(dir string, perm fs.FileMode) error { return mkdirAllSync(dir, perm) }

func (OSFS) ReadDir(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(entries))
	for i, e := range entries {
		names[i] = e.Name()
	}
	return names, nil
}

func (OSFS) SyncDir(dir string) error { return SyncPath(dir) }

// SyncPath fsyncs the file or directory at path (for a file written by
// someone else, say a library, or a directory's entries).
func SyncPath(path string) error {
	f, err := os.Open(filepath.Clean(path))
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

type osFile struct{ *os.File }

// Sync flushes data and the metadata needed to read it back (the size), not
// timestamps: fdatasync is what a log needs and is cheaper than fsync.
func (f osFile) Sync() error {
	for {
		err := syscall.Fdatasync(int(f.File.Fd()))
		if err != syscall.EINTR {
			if err != nil {
				return &os.PathError{Op: "fdatasync", Path: f.Name(), Err: err}
			}
			return nil
		}
	}
}

// MkdirAll creates dir and any missing parents (mode 0750) durably: the
// parent of every directory it creates is fsynced, so that a power cut
// cannot lose a directory and with it everything later written and
// fsynced inside it. Every package that keeps state on disk creates its
// directories with it.
func MkdirAll(dir string) error { return mkdirAllSync(dir, 0o750) }

func mkdirAllSync(dir string, perm fs.FileMode) error {
	dir = filepath.Clean(dir)
	if fi, err := os.Stat(dir); err == nil {
		if fi.IsDir() {
			return nil
		}
		return &fs.PathError{Op: "mkdir", Path: dir, Err: syscall.ENOTDIR}
	}
	parent := filepath.Dir(dir)
	if parent != dir {
		if err := mkdirAllSync(parent, perm); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, perm); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil // created beside us
		}
		return err
	}
	return OSFS{}.SyncDir(parent)
}

// opError says which operation on which file failed, unless err (an
// *fs.PathError from the OS) says so already: "write X: write X: no space
// left on device" helps nobody.
func opError(op, path string, err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) && pe.Path == path {
		return err
	}
	return fmt.Errorf("%s %s: %w", op, path, err)
}
