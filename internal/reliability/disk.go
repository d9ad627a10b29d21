//go:build linux

package reliability

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// RequireRoot fails t (never skips) when the test cannot mount file
// systems.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("this fault test mounts file systems (loop ext4, FUSE) and must run as root (make reliability runs it with sudo when needed)")
	}
}

// MountExt4 creates an ext4 file system of size bytes in an image file
// (no reserved blocks: root gets no extra room) and loop-mounts it on dir,
// which it creates. It is unmounted when the test ends.
func MountExt4(t testing.TB, dir string, size int64) {
	t.Helper()
	RequireRoot(t)
	img := filepath.Join(t.TempDir(), "fs.img")
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", "-m", "0", img).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v\n%s", err, out)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-o", "loop", img, dir).CombinedOutput(); err != nil {
		t.Fatalf("mount -o loop: %v\n%s", err, out)
	}
	t.Cleanup(func() { unmount(t, dir) })
}

// unmount unmounts dir, retrying while it is busy, lazily as a last
// resort (the loop device is released when the last user goes).
func unmount(t testing.TB, dir string) {
	for range 50 {
		err := syscall.Unmount(dir, 0)
		if err == nil || errors.Is(err, syscall.EINVAL) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
		t.Errorf("unmounting %s: %v", dir, err)
	}
}

// Fill writes a file in dir until the file system has no free block left
// (ENOSPC) and returns its path and size.
func Fill(dir string) (string, int64, error) {
	path := filepath.Join(dir, "filler")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return path, 0, err
	}
	defer f.Close()
	var size int64
	for _, chunk := range []int{1 << 20, 64 << 10, 4 << 10, 512} {
		buf := make([]byte, chunk)
		for {
			n, err := f.Write(buf)
			size += int64(n)
			if errors.Is(err, syscall.ENOSPC) {
				break
			}
			if err != nil {
				return path, size, err
			}
		}
	}
	if err := f.Sync(); err != nil && !errors.Is(err, syscall.ENOSPC) {
		return path, size, err
	}
	return path, size, nil
}

// Free reports the bytes available to root on the file system holding dir.
func Free(dir string) (int64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, fmt.Errorf("statfs %s: %w", dir, err)
	}
	return int64(st.Bfree) * st.Bsize, nil
}
