package wal

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestMkdirAll(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "a", "b", "c")
	if err := MkdirAll(dir); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		t.Fatalf("stat %s: %v", dir, err)
	}
	if err := MkdirAll(dir); err != nil {
		t.Fatalf("existing directory: %v", err)
	}
	file := filepath.Join(root, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := MkdirAll(filepath.Join(file, "x")); err == nil {
		t.Fatal("MkdirAll under a regular file succeeded")
	}
	if err := MkdirAll(file); err == nil {
		t.Fatal("MkdirAll over a regular file succeeded")
	}
}

func TestOpErrorDoesNotRepeatThePath(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.wal")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	_, werr := f.Write([]byte("x")) // closed: a PathError naming path
	if got := opError("write", path, werr).Error(); strings.Count(got, path) != 1 {
		t.Fatalf("%q names the file %d times", got, strings.Count(got, path))
	}
	if got := opError("write", path, errors.New("disk on fire")).Error(); got != "write "+path+": disk on fire" {
		t.Fatalf("%q", got)
	}
}
