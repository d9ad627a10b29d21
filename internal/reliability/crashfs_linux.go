//go:build linux

package reliability

import (
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"slices"
	"sync"
	"syscall"
	"time"
)

// CrashFS is an in-memory file system served to the kernel through FUSE
// that remembers what was made durable, so that a test can cut the power
// under a real process (kill -9, then PowerCut) and find on "reboot"
// exactly what a disk would hold.
//
// The durability model is the strict one POSIX promises and the WAL is
// written for (the same as wal/waltest's crash-simulating MemFS and
// Pebble's vfs.NewCrashableMem): a file's contents survive as of its last
// fsync or fdatasync; a directory's entries (creations, renames, links,
// removals) survive as of its last fsync. Nothing else does: a file created
// and synced whose directory was not synced is gone; a rename not followed
// by a directory fsync is undone; data written after the last fsync is
// lost. Real file systems (ext4 with its journal) often keep more, never
// less, so the model errs on the harsh side.
//
// It speaks the FUSE kernel protocol (7.31) on /dev/fuse directly, with no
// library: it needs root (mount(2)) and /dev/fuse. The serving process must
// only use the file system through system calls, never mmap: a page fault
// on it in a goroutine can deadlock the Go runtime (a stop-the-world waits
// for the faulting thread, the fault for the stopped server). Other
// processes (edged's tstorage maps its partitions) are not affected. Writes are
// write-through (no FUSE writeback cache), so every write(2) reaches it
// before the call returns, and every fsync(2) arrives as FUSE_FSYNC. Requests
// are served one at a time by one goroutine.
type CrashFS struct {
	dir string
	// Journal selects ext4's behaviour (data=ordered, the default on
	// Raspberry Pi OS) for the namespace: any fsync commits the journal,
	// which makes every directory change made so far durable, wherever it
	// is. File data stays durable only through its own file's fsync.
	// False is the strict POSIX model.
	Journal bool
	// Torn, when set, makes a cut keep a random part of each file's
	// unsynced writes, in write order (the sectors that happened to reach
	// the disk): torn tails, as wal/waltest.MemFS.Crash does. Nil drops
	// every unsynced byte.
	Torn *rand.Rand

	mu      sync.Mutex
	nodes   map[uint64]*fsNode
	nextIno uint64
	fd      int
	served  chan struct{} // closed when the serving goroutine ends
	stats   CrashStats
}

// CrashStats counts what the file system saw and what power cuts threw away.
type CrashStats struct {
	Writes, Fsyncs, DirFsyncs uint64
	Cuts                      int
	// LostBytes and LostEntries are summed over the cuts: file bytes that
	// differed from their synced contents, directory entries changed
	// since their directory's last fsync.
	LostBytes, LostEntries uint64
}

type fsNode struct {
	dir            bool
	mode           uint32 // permission bits
	data, synced   []byte
	children       map[string]uint64 // current entries (directories)
	syncedChildren map[string]uint64 // as of the last fsync of the directory
	nlink          uint32            // files: directory entries naming it
	mtime          time.Time
}

const rootIno = 1

// MountCrashFS mounts an empty CrashFS on dir (created if needed) and
// unmounts it when the test ends.
func MountCrashFS(t interface {
	Helper()
	Fatal(...any)
	Cleanup(func())
	Errorf(string, ...any)
}, dir string) *CrashFS {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("CrashFS mounts a FUSE file system and must run as root")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	fs := &CrashFS{dir: dir, nextIno: rootIno + 1, nodes: map[uint64]*fsNode{
		rootIno: {dir: true, mode: 0o755, children: map[string]uint64{}, syncedChildren: map[string]uint64{}, mtime: time.Now()},
	}}
	if err := fs.mount(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := fs.unmount(); err != nil {
			t.Errorf("crashfs: %v", err)
		}
	})
	return fs
}

// Dir is the mount point.
func (fs *CrashFS) Dir() string { return fs.dir }

// Stats returns the counters.
func (fs *CrashFS) Stats() CrashStats {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return fs.stats
}

// SyncAll makes everything durable, as sync(1) would.
func (fs *CrashFS) SyncAll() {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	for _, n := range fs.nodes {
		if n.dir {
			n.syncedChildren = maps.Clone(n.children)
		} else {
			n.synced = slices.Clone(n.data)
		}
	}
}

// SyncDirs makes every directory's entries durable, not file data: what
// fsyncing each directory once would do.
func (fs *CrashFS) SyncDirs() {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	for _, n := range fs.nodes {
		if n.dir {
			n.syncedChildren = maps.Clone(n.children)
		}
	}
}

// PowerCut unmounts the file system (every process using it must be dead:
// kill -9 it first), throws away everything that was not durable, and
// mounts what is left again, with a cold kernel cache, as after a reboot.
func (fs *CrashFS) PowerCut() error {
	if err := fs.unmount(); err != nil {
		return err
	}
	fs.mu.Lock()
	for _, n := range fs.nodes {
		if n.dir {
			for name, ino := range n.children {
				if n.syncedChildren[name] != ino {
					fs.stats.LostEntries++
				}
			}
			for name := range n.syncedChildren {
				if _, ok := n.children[name]; !ok {
					fs.stats.LostEntries++
				}
			}
			n.children = maps.Clone(n.syncedChildren)
		} else {
			if !slices.Equal(n.data, n.synced) {
				fs.stats.LostBytes += uint64(max(len(n.data), len(n.synced)) - commonPrefix(n.data, n.synced))
			}
			n.data = crashedContent(n.data, n.synced, fs.Torn)
			n.synced = slices.Clone(n.data) // what is on the disk after the cut stays there
		}
	}
	// What no durable entry reaches is gone; link counts follow the
	// entries that survived.
	reach := map[uint64]bool{}
	var walk func(ino uint64)
	walk = func(ino uint64) {
		if reach[ino] {
			return
		}
		reach[ino] = true
		if n := fs.nodes[ino]; n != nil && n.dir {
			for _, c := range n.children {
				walk(c)
			}
		}
	}
	walk(rootIno)
	for ino, n := range fs.nodes {
		if !reach[ino] {
			delete(fs.nodes, ino)
			continue
		}
		if !n.dir {
			n.nlink = 0
		}
	}
	for _, n := range fs.nodes {
		if n.dir {
			for _, c := range n.children {
				if cn := fs.nodes[c]; cn != nil && !cn.dir {
					cn.nlink++
				}
			}
		}
	}
	fs.stats.Cuts++
	fs.mu.Unlock()
	return fs.mount()
}

// crashedContent is what survives of a file: its synced content and, with
// rng, its unsynced writes up to a random point past the first byte that
// differs (writes reach the disk in order, up to the cut).
func crashedContent(data, synced []byte, rng *rand.Rand) []byte {
	out := slices.Clone(synced)
	if rng == nil {
		return out
	}
	d := commonPrefix(data, synced)
	if d == len(data) {
		return out
	}
	keep := d + rng.IntN(len(data)-d+1)
	if keep > len(out) {
		out = append(out, make([]byte, keep-len(out))...)
	}
	copy(out[d:keep], data[d:keep])
	return out
}

func commonPrefix(a, b []byte) int {
	n := min(len(a), len(b))
	for i := range n {
		if a[i] != b[i] {
			return i
		}
	}
	return n
}

func (fs *CrashFS) mount() error {
	fd, err := syscall.Open("/dev/fuse", syscall.O_RDWR|syscall.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("crashfs: open /dev/fuse: %w", err)
	}
	opts := fmt.Sprintf("fd=%d,rootmode=40000,user_id=0,group_id=0,allow_other", fd)
	if err := syscall.Mount("crashfs", fs.dir, "fuse", syscall.MS_NOSUID|syscall.MS_NODEV, opts); err != nil {
		syscall.Close(fd)
		return fmt.Errorf("crashfs: mount on %s: %w", fs.dir, err)
	}
	fs.fd = fd
	fs.served = make(chan struct{})
	go fs.serve(fd, fs.served)
	return nil
}

func (fs *CrashFS) unmount() error {
	if fs.served == nil {
		return nil
	}
	var err error
	for range 50 {
		if err = syscall.Unmount(fs.dir, 0); err == nil || errors.Is(err, syscall.EINVAL) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil && !errors.Is(err, syscall.EINVAL) {
		syscall.Unmount(fs.dir, syscall.MNT_DETACH)
	}
	// The kernel ends the session: the server's read fails with ENODEV.
	<-fs.served
	syscall.Close(fs.fd)
	fs.served = nil
	if err != nil && !errors.Is(err, syscall.EINVAL) {
		return fmt.Errorf("unmount %s: %w (detached lazily)", fs.dir, err)
	}
	return nil
}
