package packaging_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// testVersion is the version the test packages are built with; its Debian
// form is testDebVersion.
const (
	testVersion    = "v1.2.3"
	testDebVersion = "1.2.3"
)

// arch is one target of the packages.
type arch struct {
	deb    string   // Debian architecture
	suffix string   // of make cross's binaries: edged-linux-SUFFIX
	qemu   []string // runs a binary of this architecture on the CPU of a real board
}

var allArches = []arch{
	// ARM1176: the CPU of the Raspberry Pi 1 and Zero, the reason for GOARM=6.
	{"armhf", "armv6", []string{"qemu-arm", "-cpu", "arm1176"}},
	// Cortex-A53: Raspberry Pi 3 and Zero 2 with a 64-bit OS.
	{"arm64", "arm64", []string{"qemu-aarch64", "-cpu", "cortex-a53"}},
	{"amd64", "amd64", nil},
}

// arches are the architectures the tests package: all of them, or amd64
// alone under -short.
func arches() []arch {
	if testing.Short() {
		return allArches[2:]
	}
	return allArches
}

var (
	tmpRoot string // removed by TestMain

	built struct {
		once sync.Once
		dir  string
		err  error
	}
)

func TestMain(m *testing.M) {
	var err error
	tmpRoot, err = os.MkdirTemp("", "edged-packaging-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(tmpRoot)
	os.Exit(code)
}

// dist builds, once for the whole test binary, the binaries and .deb files
// of arches() with packaging/build-debs.sh (what `make package` runs) and
// returns the directory that holds them.
func dist(t *testing.T) string {
	t.Helper()
	built.once.Do(func() {
		dir := filepath.Join(tmpRoot, "dist")
		args := []string{"build-debs.sh"}
		for _, a := range arches() {
			args = append(args, a.deb)
		}
		cmd := exec.Command("bash", args...)
		cmd.Env = append(os.Environ(), "DIST="+dir, "VERSION="+testVersion, "DEB_VERSION=")
		out, err := cmd.CombinedOutput()
		if err != nil {
			built.err = fmt.Errorf("build-debs.sh %s: %v\n%s", strings.Join(args[1:], " "), err, out)
			return
		}
		built.dir = dir
	})
	if built.err != nil {
		t.Fatal(built.err)
	}
	return built.dir
}

// debPath is the package file build-debs.sh writes for pkg and a.
func debPath(t *testing.T, pkg string, a arch) string {
	return filepath.Join(dist(t), fmt.Sprintf("%s_%s_%s.deb", pkg, testDebVersion, a.deb))
}

// extract unpacks the edged and edged-reconcile packages of a into a fresh
// directory, as dpkg would install them, and returns it.
func extract(t *testing.T, a arch) string {
	t.Helper()
	root := t.TempDir()
	for _, pkg := range []string{"edged", "edged-reconcile"} {
		run(t, "dpkg-deb", "-x", debPath(t, pkg, a), root)
	}
	return root
}

// tool fails the test when a command the tests need is missing: these run
// in CI, where a silent skip would hide it.
func tool(t *testing.T, name, from string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Fatalf("%s not found (%s): run `make setup`", name, from)
	}
}

// run runs a command (two minutes at most) and returns its stdout; a
// failure fails the test with stderr.
func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := runErr(name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v", name, strings.Join(args, " "), err)
	}
	return out
}

func runErr(name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%w\n%s%s", err, stdout.Bytes(), stderr.Bytes())
	}
	return stdout.String(), nil
}
