package packaging_test

import (
	"bufio"
	"compress/gzip"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
)

// TestInstall unpacks the amd64 packages with dpkg into a scratch root (its
// own, empty dpkg database) and checks what dpkg installed and recorded:
// files and modes, the units, the conffiles, the maintainer scripts. The
// scripts are not run: they would add the user and write /etc/edged on this
// machine (dpkg runs them chrooted into a root that has no /bin/sh here).
func TestInstall(t *testing.T) {
	tool(t, "dpkg", "Debian's dpkg")
	root := t.TempDir()
	admin := filepath.Join(root, "var/lib/dpkg")
	for _, d := range []string{"info", "updates"} {
		if err := os.MkdirAll(filepath.Join(admin, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(admin, "status"), nil, 0o644); err != nil {
		t.Fatal(err)
	}

	a := allArches[2] // amd64: dpkg refuses a foreign architecture
	want := map[string]struct {
		files     map[string]fs.FileMode // path → permissions
		same      map[string]string      // installed path → its source in packaging/
		conffiles []string
	}{
		"edged": {
			files: map[string]fs.FileMode{
				"/usr/bin/edged":                        0o755,
				"/usr/lib/systemd/system/edged.service": 0o644,
				"/etc/edged/edged.yaml":                 0o644,
				"/usr/share/doc/edged/changelog.gz":     0o644,
				"/usr/share/doc/edged/copyright":        0o644,
				"/usr/share/lintian/overrides/edged":    0o644,
			},
			same: map[string]string{
				"/usr/lib/systemd/system/edged.service": "edged.service",
				"/etc/edged/edged.yaml":                 "edged.yaml",
				"/usr/share/doc/edged/copyright":        "copyright",
				"/usr/share/lintian/overrides/edged":    "lintian/edged",
			},
			conffiles: []string{"/etc/edged/edged.yaml"},
		},
		"edged-reconcile": {
			files: map[string]fs.FileMode{
				"/usr/bin/edged-reconcile":                        0o755,
				"/usr/lib/systemd/system/edged-reconcile.service": 0o644,
				"/usr/lib/systemd/system/edged-reconcile.timer":   0o644,
				"/usr/share/doc/edged-reconcile/changelog.gz":     0o644,
				"/usr/share/doc/edged-reconcile/copyright":        0o644,
				"/usr/share/lintian/overrides/edged-reconcile":    0o644,
			},
			same: map[string]string{
				"/usr/lib/systemd/system/edged-reconcile.service": "edged-reconcile.service",
				"/usr/lib/systemd/system/edged-reconcile.timer":   "edged-reconcile.timer",
				"/usr/share/doc/edged-reconcile/copyright":        "copyright",
				"/usr/share/lintian/overrides/edged-reconcile":    "lintian/edged-reconcile",
			},
		},
	}
	for _, pkg := range []string{"edged", "edged-reconcile"} {
		// --log: dpkg would otherwise append to this machine's /var/log/dpkg.log.
		run(t, "dpkg", "--root="+root, "--force-not-root", "--log="+filepath.Join(root, "dpkg.log"),
			"--unpack", debPath(t, pkg, a))
	}

	for pkg, w := range want {
		t.Run(pkg, func(t *testing.T) {
			status := run(t, "dpkg-query", "--root="+root, "-W", "-f=${Status} ${Version} ${Architecture}\n", pkg)
			if wantStatus := "install ok unpacked " + testDebVersion + " amd64\n"; status != wantStatus {
				t.Errorf("dpkg-query: %q, want %q", status, wantStatus)
			}

			// Unpacked, not configured: a new conffile waits beside its
			// place as .dpkg-new; configure renames it (or asks, when the
			// admin has changed the old one).
			onDisk := func(p string) string {
				if slices.Contains(w.conffiles, p) {
					p += ".dpkg-new"
				}
				return filepath.Join(root, p)
			}
			list := readLines(t, filepath.Join(admin, "info", pkg+".list"))
			for p, mode := range w.files {
				if !slices.Contains(list, p) {
					t.Errorf("%s not in dpkg's info/%s.list", p, pkg)
				}
				fi, err := os.Stat(onDisk(p))
				if err != nil {
					t.Error(err)
					continue
				}
				if !fi.Mode().IsRegular() || fi.Mode().Perm() != mode {
					t.Errorf("%s: %v, want a regular file %v", p, fi.Mode(), mode)
				}
				if st, ok := fi.Sys().(*syscall.Stat_t); ok && os.Geteuid() == 0 && (st.Uid != 0 || st.Gid != 0) {
					t.Errorf("%s: owner %d:%d, want root", p, st.Uid, st.Gid)
				}
			}
			for p, src := range w.same {
				got, _ := os.ReadFile(onDisk(p))
				if want, err := os.ReadFile(src); err != nil || string(got) != string(want) {
					t.Errorf("%s differs from packaging/%s (%v)", p, src, err)
				}
			}

			var conffiles []string
			if _, err := os.Stat(filepath.Join(admin, "info", pkg+".conffiles")); err == nil {
				conffiles = readLines(t, filepath.Join(admin, "info", pkg+".conffiles"))
			}
			if !slices.Equal(conffiles, w.conffiles) {
				t.Errorf("info/%s.conffiles: %q, want %q", pkg, conffiles, w.conffiles)
			}
			recorded := run(t, "dpkg-query", "--root="+root, "-W", "-f=${Conffiles}", pkg)
			for _, c := range w.conffiles {
				if !strings.Contains(recorded, " "+c+" ") {
					t.Errorf("dpkg's status has no conffile %s: %q", c, recorded)
				}
			}

			for _, s := range []string{"postinst", "prerm", "postrm"} {
				p := filepath.Join(admin, "info", pkg+"."+s)
				fi, err := os.Stat(p)
				if err != nil {
					t.Error(err)
					continue
				}
				if fi.Mode().Perm() != 0o755 {
					t.Errorf("info/%s.%s: %v, want 0755", pkg, s, fi.Mode())
				}
				got, _ := os.ReadFile(p)
				if src, _ := os.ReadFile(filepath.Join("scripts", pkg, s)); string(got) != string(src) {
					t.Errorf("info/%s.%s differs from scripts/%s/%s", pkg, s, pkg, s)
				}
				run(t, "sh", "-n", p)
			}

			checkChangelog(t, filepath.Join(root, "usr/share/doc", pkg, "changelog.gz"))
		})
	}
}

// checkChangelog reads a packaged changelog.gz: made reproducibly (no name
// or time stamp in the gzip header) and naming the package's version.
func checkChangelog(t *testing.T, path string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	z, err := gzip.NewReader(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if z.Name != "" || !z.ModTime.IsZero() {
		t.Errorf("%s: gzip header has name %q, time %v: want neither (gzip -n)", path, z.Name, z.ModTime)
	}
	text, err := io.ReadAll(z)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	first, _, _ := strings.Cut(string(text), "\n")
	if want := "edged (" + testDebVersion + ") unstable; urgency=medium"; first != want {
		t.Errorf("%s starts %q, want %q", path, first, want)
	}
	if p := regexp.MustCompile(`@[A-Z_]+@`).Find(text); p != nil {
		t.Errorf("%s: placeholder %s left:\n%s", path, p, text)
	}
}

// readLines returns a file's lines.
func readLines(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []string
	for s := bufio.NewScanner(f); s.Scan(); {
		lines = append(lines, s.Text())
	}
	return lines
}
