//go:build linux

package reliability

import (
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"sync"
	"syscall"
	"time"
)

// crashServer is CrashFS's file system: it runs in a helper process (see
// CrashFS) and serves the kernel's FUSE requests from memory.
type crashServer struct {
	dir string
	// journal and torn: see CrashFS.SetModel.
	journal bool
	torn    *rand.Rand

	mu      sync.Mutex
	nodes   map[uint64]*fsNode
	nextIno uint64
	fd      int
	served  chan struct{} // closed when the serving goroutine ends
	stats   CrashStats
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

func newCrashServer(dir string) *crashServer {
	return &crashServer{dir: dir, nextIno: rootIno + 1, nodes: map[uint64]*fsNode{
		rootIno: {dir: true, mode: 0o755, children: map[string]uint64{}, syncedChildren: map[string]uint64{}, mtime: time.Now()},
	}}
}

// Stats returns the counters.
func (fs *crashServer) Stats() CrashStats {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return fs.stats
}

// SyncAll makes everything durable, as sync(1) would.
func (fs *crashServer) SyncAll() {
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
func (fs *crashServer) SyncDirs() {
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
func (fs *crashServer) PowerCut() error {
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
			n.data = crashedContent(n.data, n.synced, fs.torn)
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

func (fs *crashServer) mount() error {
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

func (fs *crashServer) unmount() error {
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
