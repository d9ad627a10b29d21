package packaging_test

import (
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// entry is one line of `dpkg-deb -c`: mode, owner and path.
type entry struct{ mode, owner, path string }

// contents lists a package's files (directories left out).
func contents(t *testing.T, deb string) map[string]entry {
	t.Helper()
	files := map[string]entry{}
	for line := range strings.Lines(run(t, "dpkg-deb", "-c", deb)) {
		// -rwxr-xr-x root/root  17459230 2026-11-23 21:34 ./usr/bin/edged
		f := strings.Fields(line)
		if len(f) < 6 || strings.HasPrefix(f[0], "d") {
			continue
		}
		p := strings.TrimPrefix(f[len(f)-1], ".")
		files[p] = entry{f[0], f[1], p}
	}
	return files
}

func TestDebs(t *testing.T) {
	tool(t, "dpkg-deb", "Debian's dpkg")
	want := map[string]struct {
		depends   string
		files     map[string]string // path → mode
		conffiles []string
		scripts   []string
	}{
		"edged": {
			depends: "adduser",
			files: map[string]string{
				"/usr/bin/edged":                            "-rwxr-xr-x",
				"/usr/lib/systemd/system/edged.service":     "-rw-r--r--",
				"/etc/edged/edged.yaml":                     "-rw-r--r--",
				"/usr/share/doc/edged/examples/edged.yaml":  "-rw-r--r--",
				"/usr/share/doc/edged/examples/periph.yaml": "-rw-r--r--",
				"/usr/share/doc/edged/README.packaging.md":  "-rw-r--r--",
				"/usr/share/doc/edged/changelog.gz":         "-rw-r--r--",
				"/usr/share/doc/edged/copyright":            "-rw-r--r--",
				"/usr/share/lintian/overrides/edged":        "-rw-r--r--",
				"/usr/share/man/man1/edged.1.gz":            "-rw-r--r--",
			},
			conffiles: []string{"/etc/edged/edged.yaml"},
			scripts:   []string{"postinst", "prerm", "postrm"},
		},
		"edged-reconcile": {
			files: map[string]string{
				"/usr/bin/edged-reconcile":                               "-rwxr-xr-x",
				"/usr/lib/systemd/system/edged-reconcile.service":        "-rw-r--r--",
				"/usr/lib/systemd/system/edged-reconcile.timer":          "-rw-r--r--",
				"/usr/share/doc/edged-reconcile/examples/reconcile.yaml": "-rw-r--r--",
				"/usr/share/doc/edged-reconcile/changelog.gz":            "-rw-r--r--",
				"/usr/share/doc/edged-reconcile/copyright":               "-rw-r--r--",
				"/usr/share/lintian/overrides/edged-reconcile":           "-rw-r--r--",
				"/usr/share/man/man1/edged-reconcile.1.gz":               "-rw-r--r--",
			},
			scripts: []string{"postinst", "prerm", "postrm"},
		},
	}
	machines := map[string]elf.Machine{"armhf": elf.EM_ARM, "arm64": elf.EM_AARCH64, "amd64": elf.EM_X86_64}
	for _, a := range arches() {
		for pkg, w := range want {
			t.Run(pkg+"_"+a.deb, func(t *testing.T) {
				deb := debPath(t, pkg, a)
				fields := run(t, "dpkg-deb", "-f", deb, "Package", "Version", "Architecture", "Depends")
				wantFields := "Package: " + pkg + "\nVersion: " + testDebVersion + "\nArchitecture: " + a.deb + "\n"
				if w.depends != "" {
					wantFields += "Depends: " + w.depends + "\n"
				}
				if fields != wantFields {
					t.Errorf("control fields:\n%s\nwant:\n%s", fields, wantFields)
				}

				files := contents(t, deb)
				for p, mode := range w.files {
					if e, ok := files[p]; !ok {
						t.Errorf("%s missing", p)
					} else if e.mode != mode || e.owner != "root/root" {
						t.Errorf("%s: %s %s, want %s root/root", p, e.mode, e.owner, mode)
					}
				}
				for p := range files {
					if _, ok := w.files[p]; !ok {
						t.Errorf("unexpected file %s", p)
					}
				}

				control := t.TempDir()
				run(t, "dpkg-deb", "-e", deb, control)
				conf, _ := os.ReadFile(filepath.Join(control, "conffiles"))
				if got := strings.Fields(string(conf)); !slices.Equal(got, w.conffiles) {
					t.Errorf("conffiles %q, want %q", got, w.conffiles)
				}
				for _, s := range w.scripts {
					got, err := os.ReadFile(filepath.Join(control, s))
					if err != nil {
						t.Errorf("maintainer script %s: %v", s, err)
						continue
					}
					src, _ := os.ReadFile(filepath.Join("scripts", pkg, s))
					if string(got) != string(src) {
						t.Errorf("%s differs from scripts/%s/%s", s, pkg, s)
					}
					if fi, _ := os.Stat(filepath.Join(control, s)); fi.Mode().Perm()&0o111 == 0 {
						t.Errorf("%s is not executable", s)
					}
				}

				root := t.TempDir()
				run(t, "dpkg-deb", "-x", deb, root)
				bin := filepath.Join(root, "usr/bin", pkg)
				f, err := elf.Open(bin)
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				if f.Machine != machines[a.deb] {
					t.Errorf("%s is for %v, want %v", bin, f.Machine, machines[a.deb])
				}
				for _, p := range f.Progs {
					if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
						t.Errorf("%s is dynamically linked: build with CGO_ENABLED=0", bin)
					}
				}
			})
		}
	}
}

// TestLintian runs Debian's lintian on every package: an error (E:), or
// any tag about the manual page, fails the test; other warnings are logged. The statically-linked-binary error is
// overridden by the packages themselves (packaging/lintian/PKG).
func TestLintian(t *testing.T) {
	tool(t, "lintian", "Debian's lintian")
	for _, a := range arches() {
		for _, pkg := range []string{"edged", "edged-reconcile"} {
			t.Run(pkg+"_"+a.deb, func(t *testing.T) {
				deb := debPath(t, pkg, a)
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
				defer cancel()
				var stdout, stderr bytes.Buffer
				// --no-cfg: the same checks whatever ~/.config/lintian says.
				cmd := exec.CommandContext(ctx, "lintian", "--no-cfg", "--display-info", deb)
				cmd.Stdout, cmd.Stderr = &stdout, &stderr
				err := cmd.Run()
				// Exit 1 is "tags at --fail-on level (errors)", reported
				// below from the output; anything else means lintian failed.
				var exit *exec.ExitError
				if err != nil && !(errors.As(err, &exit) && exit.ExitCode() == 1) {
					t.Fatalf("lintian %s: %v\n%s%s", deb, err, stdout.Bytes(), stderr.Bytes())
				}
				for line := range strings.Lines(stdout.String()) {
					if strings.HasPrefix(line, "E: ") {
						t.Errorf("lintian: %s", strings.TrimSpace(line))
					} else if strings.Contains(line, "manual-page") || strings.Contains(line, "manpage-") {
						// Each package ships its page (packaging/man).
						t.Errorf("lintian: %s", strings.TrimSpace(line))
					} else if line = strings.TrimSpace(line); line != "" {
						t.Logf("lintian: %s", line)
					}
				}
				if err != nil && !t.Failed() {
					t.Errorf("lintian exited 1 without an E: line:\n%s%s", stdout.Bytes(), stderr.Bytes())
				}
			})
		}
	}
}

// TestPackagedConfig: the /etc/edged/edged.yaml the package installs is
// valid and points the daemon where the unit does, and the example
// reconcile.yaml is accepted by edged-reconcile.
func TestPackagedConfig(t *testing.T) {
	root := extract(t, allArches[2]) // amd64: this machine
	conf := filepath.Join(root, "etc/edged/edged.yaml")
	if out := run(t, filepath.Join(root, "usr/bin/edged"), "check", "-c", conf); !strings.HasSuffix(out, ": OK\n") {
		t.Errorf("edged check: %q", out)
	}
	b, _ := os.ReadFile(conf)
	if !regexp.MustCompile(`(?m)^data_dir: /var/lib/edged\b`).Match(b) {
		t.Errorf("%s does not set data_dir: /var/lib/edged", conf)
	}
	checkReconcileConfig(t, nil, filepath.Join(root, "usr/bin/edged-reconcile"),
		filepath.Join(root, "usr/share/doc/edged-reconcile/examples/reconcile.yaml"))
}

// checkReconcileConfig runs a dry run of edged-reconcile (under the emulator
// cmd, if any) with conf against a closed port: exit 3 (InfluxDB
// unreachable) means the configuration was accepted; 2 means it was not.
func checkReconcileConfig(t *testing.T, emulator []string, bin, conf string) {
	t.Helper()
	args := append(append(slices.Clone(emulator), bin), "run", "--config", conf, "--dry-run", "--url", "http://"+closedAddr(t))
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(os.Environ(), "EDGED_RECONCILE_TOKEN_FILE=", "CREDENTIALS_DIRECTORY=")
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 3 {
		t.Errorf("edged-reconcile run --config %s: %v, want exit 3 (store unreachable):\n%s", conf, err, out)
	}
}

// closedAddr returns a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// TestMaintainerScripts checks the scripts' syntax with the shell dpkg runs
// them with (/bin/sh: dash on Debian), and the build script's with bash.
func TestMaintainerScripts(t *testing.T) {
	scripts, _ := filepath.Glob("scripts/*/*")
	if len(scripts) < 6 {
		t.Fatalf("maintainer scripts: %q", scripts)
	}
	for _, s := range scripts {
		b, _ := os.ReadFile(s)
		if !strings.HasPrefix(string(b), "#!/bin/sh\n") {
			t.Errorf("%s: want #!/bin/sh (dpkg runs it with it)", s)
		}
		if !strings.Contains(string(b), "\nset -e\n") {
			t.Errorf("%s: want set -e", s)
		}
		run(t, "sh", "-n", s)
		if _, err := runErr("dash", "-n", s); err != nil && !strings.Contains(err.Error(), "executable file not found") {
			t.Errorf("dash -n %s: %v", s, err)
		}
	}
	run(t, "bash", "-n", "build-debs.sh")
	// Data go only on purge: the one rm of /var/lib/edged sits in the
	// purge branch of postrm.
	for _, s := range scripts {
		b, _ := os.ReadFile(s)
		text := string(b)
		if strings.Contains(text, "rm -rf /var/lib/edged") {
			purge := strings.Index(text, "\npurge)")
			if filepath.Base(s) != "postrm" || purge < 0 || strings.Index(text, "rm -rf /var/lib/edged") < purge {
				t.Errorf("%s removes /var/lib/edged outside the purge branch of postrm", s)
			}
		}
	}
}
