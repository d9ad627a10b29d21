//go:build linux

package reliability

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
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
// lost. SetModel selects ext4's journal behaviour for directories, and
// torn tails, instead.
//
// It speaks the FUSE kernel protocol (7.31) on /dev/fuse directly, with no
// library: it needs root (mount(2)) and /dev/fuse. Writes are
// write-through (no FUSE writeback cache), so every write(2) reaches it
// before the call returns, and every fsync(2) arrives as FUSE_FSYNC.
//
// The file system is served by a helper process (this test binary, started
// with CrashFSEnv set: see ServeCrashFS), never by the test process: a Go
// program that both serves a FUSE file system and uses it can deadlock,
// because the runtime's own system calls (epoll_ctl on every os.Open, a
// page fault on an mmap) wait for a FUSE reply while holding a P, and the
// serving goroutine then has no P to run on.
type CrashFS struct {
	dir string
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Reader
	mu  sync.Mutex
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

// CrashFSEnv names the environment variable that makes the test binary a
// CrashFS server for the directory it holds (see TestMain).
const CrashFSEnv = "EDGED_CRASHFS_SERVE"

// MountCrashFS mounts an empty CrashFS on dir (created if needed), served
// by a helper process, and unmounts it when the test ends.
func MountCrashFS(t testing.TB, dir string) *CrashFS {
	t.Helper()
	RequireRoot(t)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	c := &CrashFS{dir: dir, cmd: exec.Command(self)}
	c.cmd.Env = append(os.Environ(), CrashFSEnv+"="+dir)
	c.cmd.Stderr = os.Stderr
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if c.in, err = c.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := c.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	c.out = bufio.NewReader(stdout)
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.close)
	if _, err := c.call("ready"); err != nil {
		t.Fatalf("crashfs: %v", err)
	}
	return c
}

// call sends a command and returns the server's answer.
func (c *CrashFS) call(cmd string) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cmd != "ready" {
		if _, err := fmt.Fprintln(c.in, cmd); err != nil {
			return "", fmt.Errorf("crashfs %s: %w", cmd, err)
		}
	}
	line, err := c.out.ReadString('\n')
	if err != nil {
		return "", fmt.Errorf("crashfs %s: the server died: %w", cmd, err)
	}
	line = strings.TrimSpace(line)
	if rest, ok := strings.CutPrefix(line, "ok"); ok {
		return strings.TrimSpace(rest), nil
	}
	return "", fmt.Errorf("crashfs %s: %s", cmd, line)
}

func (c *CrashFS) must(cmd string) {
	if _, err := c.call(cmd); err != nil {
		panic(err)
	}
}

// close unmounts and stops the server; if it does not stop, it is killed
// and the mount detached.
func (c *CrashFS) close() {
	done := make(chan struct{})
	go func() {
		c.call("quit")
		c.cmd.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		c.cmd.Process.Kill()
		<-done
	}
	syscall.Unmount(c.dir, syscall.MNT_DETACH) // a no-op after a clean quit
}

// Dir is the mount point.
func (c *CrashFS) Dir() string { return c.dir }

// SetModel selects the durability model. With journal, directory changes
// are made durable by any fsync (ext4's journal commit, data=ordered, the
// Raspberry Pi OS default); without, only by an fsync of their directory.
// With torn (a seed), a cut keeps a random part of each file's unsynced
// writes, in write order (the sectors that happened to reach the disk:
// torn tails, as wal/waltest.MemFS.Crash does); without, every unsynced
// byte is dropped.
func (c *CrashFS) SetModel(journal bool, torn *uint64) {
	c.must(fmt.Sprintf("journal %t", journal))
	if torn != nil {
		c.must(fmt.Sprintf("torn %d", *torn))
	}
}

// SyncAll makes everything durable, as sync(1) would.
func (c *CrashFS) SyncAll() { c.must("syncall") }

// SyncDirs makes every directory's entries durable, not file data: what
// fsyncing each directory once would do.
func (c *CrashFS) SyncDirs() { c.must("syncdirs") }

// PowerCut unmounts the file system (every process using it must be dead:
// kill -9 it first), throws away everything that was not durable, and
// mounts what is left again, with a cold kernel cache, as after a reboot.
func (c *CrashFS) PowerCut() error {
	_, err := c.call("cut")
	return err
}

// Stats returns the counters.
func (c *CrashFS) Stats() CrashStats {
	var st CrashStats
	if s, err := c.call("stats"); err == nil {
		json.Unmarshal([]byte(s), &st)
	}
	return st
}

// ServeCrashFS is the helper process: it mounts a CrashFS on dir, says
// "ok" on out, then runs the commands read from in (one per line; each
// answered "ok [result]" or "err message") until "quit" or the end of in.
// It returns the process's exit code.
func ServeCrashFS(dir string, in io.Reader, out io.Writer) int {
	fs := newCrashServer(dir)
	if err := fs.mount(); err != nil {
		fmt.Fprintln(out, "err", err)
		return 1
	}
	fmt.Fprintln(out, "ok")
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		cmd, arg, _ := strings.Cut(sc.Text(), " ")
		var res string
		var err error
		switch cmd {
		case "journal":
			fs.mu.Lock()
			fs.journal = arg == "true"
			fs.mu.Unlock()
		case "torn":
			seed, perr := strconv.ParseUint(arg, 10, 64)
			err = perr
			fs.mu.Lock()
			fs.torn = rand.New(rand.NewPCG(seed, 0x7047))
			fs.mu.Unlock()
		case "syncall":
			fs.SyncAll()
		case "syncdirs":
			fs.SyncDirs()
		case "cut":
			err = fs.PowerCut()
		case "stats":
			b, _ := json.Marshal(fs.Stats())
			res = string(b)
		case "quit":
			err = fs.unmount()
			if err != nil {
				fmt.Fprintln(out, "err", err)
				return 1
			}
			fmt.Fprintln(out, "ok")
			return 0
		default:
			err = errors.New("unknown command")
		}
		if err != nil {
			fmt.Fprintln(out, "err", strings.ReplaceAll(err.Error(), "\n", " "))
			continue
		}
		fmt.Fprintln(out, "ok", res)
	}
	if err := fs.unmount(); err != nil {
		return 1
	}
	return 0
}
