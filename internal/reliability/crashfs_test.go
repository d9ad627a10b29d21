//go:build linux

package reliability

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestCrashFS checks the power-cut model itself, through the kernel: what
// was fsynced (file data) and whose directory was fsynced (entries)
// survives a cut; nothing else does.
func TestCrashFS(t *testing.T) {
	t.Parallel()
	RequireRoot(t)
	fs := MountCrashFS(t, filepath.Join(t.TempDir(), "mnt"))
	dir := fs.Dir()
	p := func(name string) string { return filepath.Join(dir, name) }
	syncDir := func(d string) {
		f, err := os.Open(d)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	write := func(name, data string, sync bool) {
		f, err := os.OpenFile(p(name), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteString(data); err != nil {
			t.Fatal(err)
		}
		if sync {
			if err := f.Sync(); err != nil {
				t.Fatal(err)
			}
		}
		f.Close()
	}
	if err := os.Mkdir(p("d"), 0o755); err != nil {
		t.Fatal(err)
	}
	write("d/durable", "synced;", true)
	write("d/durable", "unsynced", false)
	write("d/orphan", "synced, but its entry is not", true)
	syncDir(dir)
	syncDir(p("d"))
	write("d/tmp", "renamed and dir synced", true)
	if err := os.Rename(p("d/tmp"), p("d/final")); err != nil {
		t.Fatal(err)
	}
	syncDir(p("d"))
	write("d/orphan2", "synced, entry not", true)
	write("d/tmp2", "renamed, dir not synced", true)
	if err := os.Rename(p("d/tmp2"), p("d/final2")); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(p("d/orphan")); err != nil { // removal not synced
		t.Fatal(err)
	}
	// mmap, which edged's view store (tstorage) uses for its partitions.
	f, err := os.Open(p("d/durable"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := syscall.Mmap(int(f.Fd()), 0, 15, syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		t.Fatalf("mmap: %v", err)
	}
	if string(m) != "synced;unsynced" {
		t.Fatalf("mmap read %q", m)
	}
	syscall.Munmap(m)
	f.Close()

	if err := fs.PowerCut(); err != nil {
		t.Fatal(err)
	}
	read := func(name string) string {
		b, err := os.ReadFile(p(name))
		if err != nil {
			return "<" + err.Error() + ">"
		}
		return string(b)
	}
	for name, want := range map[string]string{
		"d/durable": "synced;",
		"d/orphan":  "synced, but its entry is not", // its removal was not synced
		"d/final":   "renamed and dir synced",
		"d/tmp2":    "<open " + p("d/tmp2") + ": no such file or directory>",
		"d/final2":  "<open " + p("d/final2") + ": no such file or directory>",
		"d/orphan2": "<open " + p("d/orphan2") + ": no such file or directory>",
		"d/tmp":     "<open " + p("d/tmp") + ": no such file or directory>",
	} {
		if got := read(name); got != want {
			t.Errorf("after the cut, %s = %q, want %q", name, got, want)
		}
	}
	st := fs.Stats()
	if st.Cuts != 1 || st.LostBytes == 0 || st.LostEntries == 0 {
		t.Errorf("stats %+v", st)
	}
}
