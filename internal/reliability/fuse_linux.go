//go:build linux

package reliability

// The FUSE protocol as CrashFS's server speaks it (include/uapi/linux/fuse.h,
// protocol 7.31): one request read from /dev/fuse at a time, one reply
// written for it; FORGET, BATCH_FORGET and INTERRUPT get none.

import (
	"encoding/binary"
	"errors"
	"maps"
	"slices"
	"syscall"
	"time"
)

// FUSE protocol: opcodes and sizes (include/uapi/linux/fuse.h).
const (
	fuseLookup      = 1
	fuseForget      = 2
	fuseGetattr     = 3
	fuseSetattr     = 4
	fuseMknod       = 8
	fuseMkdir       = 9
	fuseUnlink      = 10
	fuseRmdir       = 11
	fuseRename      = 12
	fuseLink        = 13
	fuseOpen        = 14
	fuseRead        = 15
	fuseWrite       = 16
	fuseStatfs      = 17
	fuseRelease     = 18
	fuseFsync       = 20
	fuseFlush       = 25
	fuseInit        = 26
	fuseOpendir     = 27
	fuseReaddir     = 28
	fuseReleasedir  = 29
	fuseFsyncdir    = 30
	fuseAccess      = 34
	fuseCreate      = 35
	fuseInterrupt   = 36
	fuseDestroy     = 38
	fuseBatchForget = 42
	fuseFallocate   = 43
	fuseRename2     = 45

	fuseBigWrites = 1 << 5
	fuseMaxPages  = 1 << 22

	fattrMode = 1 << 0
	fattrSize = 1 << 3

	maxWrite = 128 << 10
	inHeader = 40
)

var ne = binary.NativeEndian

func (fs *crashServer) serve(fd int, done chan struct{}) {
	defer close(done)
	buf := make([]byte, maxWrite+64<<10)
	for {
		n, err := syscall.Read(fd, buf)
		if err != nil {
			if errors.Is(err, syscall.EINTR) || errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.ENOENT) {
				continue // ENOENT: the request was interrupted before we read it
			}
			return // ENODEV: unmounted
		}
		if n < inHeader {
			continue
		}
		req := buf[:n]
		op := ne.Uint32(req[4:])
		unique := ne.Uint64(req[8:])
		node := ne.Uint64(req[16:])
		body := req[inHeader:]
		switch op {
		case fuseForget, fuseBatchForget, fuseInterrupt:
			continue // no reply
		}
		fs.mu.Lock()
		out, errno := fs.handle(op, node, body)
		fs.mu.Unlock()
		reply := make([]byte, 16, 16+len(out))
		if errno != 0 {
			out = nil
		}
		reply = append(reply, out...)
		ne.PutUint32(reply[0:], uint32(len(reply)))
		ne.PutUint32(reply[4:], uint32(-int32(errno)))
		ne.PutUint64(reply[8:], unique)
		if _, err := syscall.Write(fd, reply); err != nil && errors.Is(err, syscall.ENODEV) {
			return
		}
		if op == fuseDestroy {
			return
		}
	}
}

func cstring(b []byte) (string, []byte) {
	for i, c := range b {
		if c == 0 {
			return string(b[:i]), b[i+1:]
		}
	}
	return string(b), nil
}

// handle serves one request; fs.mu is held.
func (fs *crashServer) handle(op uint32, ino uint64, b []byte) ([]byte, syscall.Errno) {
	switch op {
	case fuseInit:
		kflags := ne.Uint32(b[12:])
		out := make([]byte, 64)
		ne.PutUint32(out[0:], 7)
		ne.PutUint32(out[4:], 31)
		ne.PutUint32(out[8:], ne.Uint32(b[8:])) // max_readahead as offered
		ne.PutUint32(out[12:], kflags&(fuseBigWrites|fuseMaxPages))
		ne.PutUint16(out[16:], 16) // max_background
		ne.PutUint16(out[18:], 12) // congestion_threshold
		ne.PutUint32(out[20:], maxWrite)
		ne.PutUint32(out[24:], 1)                     // time_gran
		ne.PutUint16(out[28:], uint16(maxWrite/4096)) // max_pages
		return out, 0
	case fuseDestroy, fuseAccess, fuseFlush, fuseRelease, fuseReleasedir:
		return nil, 0
	case fuseStatfs:
		out := make([]byte, 80)
		for i, v := range []uint64{1 << 20, 1 << 19, 1 << 19, 1 << 20, 1 << 19} {
			ne.PutUint64(out[i*8:], v)
		}
		ne.PutUint32(out[40:], 4096)
		ne.PutUint32(out[44:], 255)
		ne.PutUint32(out[48:], 4096)
		return out, 0
	}
	n := fs.nodes[ino]
	if n == nil {
		return nil, syscall.ENOENT
	}
	switch op {
	case fuseLookup:
		name, _ := cstring(b)
		if !n.dir {
			return nil, syscall.ENOTDIR
		}
		c, ok := n.children[name]
		if !ok {
			return nil, syscall.ENOENT
		}
		return fs.entry(c), 0
	case fuseGetattr:
		return fs.attrOut(ino), 0
	case fuseSetattr:
		valid := ne.Uint32(b[0:])
		if valid&fattrSize != 0 {
			if n.dir {
				return nil, syscall.EISDIR
			}
			n.data = resize(n.data, int(ne.Uint64(b[16:])))
			n.mtime = time.Now()
		}
		if valid&fattrMode != 0 {
			n.mode = ne.Uint32(b[68:]) & 0o7777
		}
		return fs.attrOut(ino), 0
	case fuseMkdir:
		mode := ne.Uint32(b[0:])
		name, _ := cstring(b[8:])
		return fs.create(n, name, true, mode)
	case fuseMknod:
		mode := ne.Uint32(b[0:])
		name, _ := cstring(b[16:])
		if mode&syscall.S_IFMT != syscall.S_IFREG {
			return nil, syscall.EPERM
		}
		return fs.create(n, name, false, mode)
	case fuseCreate:
		flags, mode := ne.Uint32(b[0:]), ne.Uint32(b[4:])
		name, _ := cstring(b[16:])
		if c, ok := n.children[name]; ok {
			if flags&syscall.O_EXCL != 0 {
				return nil, syscall.EEXIST
			}
			if flags&syscall.O_TRUNC != 0 {
				fs.nodes[c].data = fs.nodes[c].data[:0]
			}
			return append(fs.entry(c), openOut(c)...), 0
		}
		out, errno := fs.create(n, name, false, mode)
		if errno != 0 {
			return nil, errno
		}
		return append(out, openOut(n.children[name])...), 0
	case fuseUnlink, fuseRmdir:
		name, _ := cstring(b)
		c, ok := n.children[name]
		if !ok {
			return nil, syscall.ENOENT
		}
		cn := fs.nodes[c]
		if op == fuseRmdir {
			if !cn.dir {
				return nil, syscall.ENOTDIR
			}
			if len(cn.children) > 0 {
				return nil, syscall.ENOTEMPTY
			}
		} else if cn.dir {
			return nil, syscall.EISDIR
		} else {
			cn.nlink--
		}
		// The node stays: an unsynced removal is undone by a power cut.
		delete(n.children, name)
		n.mtime = time.Now()
		return nil, 0
	case fuseRename, fuseRename2:
		newdir := ne.Uint64(b[0:])
		rest := b[8:]
		if op == fuseRename2 {
			if ne.Uint32(b[8:]) != 0 {
				return nil, syscall.EINVAL // RENAME_NOREPLACE / EXCHANGE: not needed
			}
			rest = b[16:]
		}
		oldName, rest := cstring(rest)
		newName, _ := cstring(rest)
		nd := fs.nodes[newdir]
		if nd == nil || !nd.dir {
			return nil, syscall.ENOENT
		}
		c, ok := n.children[oldName]
		if !ok {
			return nil, syscall.ENOENT
		}
		if t, ok := nd.children[newName]; ok && t != c {
			tn := fs.nodes[t]
			if tn.dir && len(tn.children) > 0 {
				return nil, syscall.ENOTEMPTY
			}
			if !tn.dir {
				tn.nlink--
			}
		}
		delete(n.children, oldName)
		nd.children[newName] = c
		n.mtime, nd.mtime = time.Now(), time.Now()
		return nil, 0
	case fuseLink:
		old := ne.Uint64(b[0:])
		name, _ := cstring(b[8:])
		on := fs.nodes[old]
		if on == nil || on.dir {
			return nil, syscall.EPERM
		}
		if _, ok := n.children[name]; ok {
			return nil, syscall.EEXIST
		}
		n.children[name] = old
		on.nlink++
		return fs.entry(old), 0
	case fuseOpen, fuseOpendir:
		return openOut(ino), 0
	case fuseRead:
		off, size := int(ne.Uint64(b[8:])), int(ne.Uint32(b[16:]))
		if off >= len(n.data) {
			return []byte{}, 0
		}
		return slices.Clone(n.data[off:min(len(n.data), off+size)]), 0
	case fuseWrite:
		off, size := int(ne.Uint64(b[8:])), int(ne.Uint32(b[16:]))
		data := b[40 : 40+size]
		if end := off + size; end > len(n.data) {
			n.data = resize(n.data, end)
		}
		copy(n.data[off:], data)
		n.mtime = time.Now()
		fs.stats.Writes++
		out := make([]byte, 8)
		ne.PutUint32(out, uint32(size))
		return out, 0
	case fuseFallocate:
		off, length, mode := ne.Uint64(b[8:]), ne.Uint64(b[16:]), ne.Uint32(b[24:])
		if mode != 0 {
			return nil, syscall.EOPNOTSUPP
		}
		if end := int(off + length); end > len(n.data) {
			n.data = resize(n.data, end)
		}
		return nil, 0
	case fuseFsync:
		n.synced = slices.Clone(n.data)
		fs.stats.Fsyncs++
		fs.commitJournal()
		return nil, 0
	case fuseFsyncdir:
		n.syncedChildren = maps.Clone(n.children)
		fs.stats.DirFsyncs++
		fs.commitJournal()
		return nil, 0
	case fuseReaddir:
		off, size := int(ne.Uint64(b[8:])), int(ne.Uint32(b[16:]))
		names := slices.Sorted(maps.Keys(n.children))
		type ent struct {
			name string
			ino  uint64
			dir  bool
		}
		ents := []ent{{".", ino, true}, {"..", rootIno, true}}
		for _, name := range names {
			c := n.children[name]
			ents = append(ents, ent{name, c, fs.nodes[c].dir})
		}
		var out []byte
		for i := off; i < len(ents); i++ {
			e := ents[i]
			rec := 24 + len(e.name)
			padded := (rec + 7) &^ 7
			if len(out)+padded > size {
				break
			}
			d := make([]byte, padded)
			ne.PutUint64(d[0:], e.ino)
			ne.PutUint64(d[8:], uint64(i+1))
			ne.PutUint32(d[16:], uint32(len(e.name)))
			typ := uint32(syscall.DT_REG)
			if e.dir {
				typ = syscall.DT_DIR
			}
			ne.PutUint32(d[20:], typ)
			copy(d[24:], e.name)
			out = append(out, d...)
		}
		return out, 0
	}
	return nil, syscall.ENOSYS
}

// commitJournal makes every directory's entries durable (Journal mode).
func (fs *crashServer) commitJournal() {
	if !fs.journal {
		return
	}
	for _, n := range fs.nodes {
		if n.dir {
			n.syncedChildren = maps.Clone(n.children)
		}
	}
}

func resize(b []byte, n int) []byte {
	if n <= len(b) {
		return b[:n]
	}
	if n <= cap(b) {
		old := len(b)
		b = b[:n]
		clear(b[old:])
		return b
	}
	nb := make([]byte, n, max(n, 2*cap(b)))
	copy(nb, b)
	return nb
}

func (fs *crashServer) create(parent *fsNode, name string, dir bool, mode uint32) ([]byte, syscall.Errno) {
	if !parent.dir {
		return nil, syscall.ENOTDIR
	}
	if _, ok := parent.children[name]; ok {
		return nil, syscall.EEXIST
	}
	ino := fs.nextIno
	fs.nextIno++
	n := &fsNode{dir: dir, mode: mode & 0o7777, mtime: time.Now()}
	if dir {
		n.children, n.syncedChildren = map[string]uint64{}, map[string]uint64{}
	} else {
		n.nlink = 1
	}
	fs.nodes[ino] = n
	parent.children[name] = ino
	parent.mtime = time.Now()
	return fs.entry(ino), 0
}

func openOut(fh uint64) []byte {
	out := make([]byte, 16)
	ne.PutUint64(out, fh)
	return out
}

// attr encodes fuse_attr (88 bytes).
func (fs *crashServer) attr(ino uint64) []byte {
	n := fs.nodes[ino]
	out := make([]byte, 88)
	mode := n.mode | syscall.S_IFREG
	nlink := n.nlink
	size := uint64(len(n.data))
	if n.dir {
		mode = n.mode | syscall.S_IFDIR
		nlink = 2
		size = 4096
		for _, c := range n.children {
			if fs.nodes[c].dir {
				nlink++
			}
		}
	}
	sec, nsec := uint64(n.mtime.Unix()), uint32(n.mtime.Nanosecond())
	ne.PutUint64(out[0:], ino)
	ne.PutUint64(out[8:], size)
	ne.PutUint64(out[16:], (size+511)/512)
	for i := range 3 {
		ne.PutUint64(out[24+8*i:], sec)
		ne.PutUint32(out[48+4*i:], nsec)
	}
	ne.PutUint32(out[60:], mode)
	ne.PutUint32(out[64:], nlink)
	ne.PutUint32(out[80:], 4096) // blksize
	return out
}

// Attributes and entries are cached by the kernel for a second: the
// kernel is the only writer, so its cache cannot go stale within a mount.
func (fs *crashServer) entry(ino uint64) []byte {
	out := make([]byte, 40, 128)
	ne.PutUint64(out[0:], ino)
	ne.PutUint64(out[16:], 1)
	ne.PutUint64(out[24:], 1)
	return append(out, fs.attr(ino)...)
}

func (fs *crashServer) attrOut(ino uint64) []byte {
	out := make([]byte, 16, 104)
	ne.PutUint64(out[0:], 1)
	return append(out, fs.attr(ino)...)
}
