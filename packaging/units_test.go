package packaging_test

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// maxExposure is the bar for `systemd-analyze security` (0 = fully
// sandboxed, 10 = not at all); systemd calls up to 2.0 "OK".
const maxExposure = 2.0

var exposureRE = regexp.MustCompile(`Overall exposure level for \S+: ([0-9]+\.[0-9]+)`)

// TestUnitExposure scores the services with systemd-analyze offline, as it
// would score them installed.
func TestUnitExposure(t *testing.T) {
	tool(t, "systemd-analyze", "Debian's systemd")
	for _, unit := range []string{"edged.service", "edged-reconcile.service"} {
		t.Run(unit, func(t *testing.T) {
			out, err := runErr("systemd-analyze", "security", "--offline=yes", "--no-pager", "./"+unit)
			// It exits non-zero above its own threshold; the score decides here.
			m := exposureRE.FindStringSubmatch(out)
			if m == nil {
				t.Fatalf("no exposure level in the output (%v):\n%s", err, out)
			}
			score, _ := strconv.ParseFloat(m[1], 64)
			t.Logf("%s: exposure %.1f", unit, score)
			if score > maxExposure {
				t.Errorf("%s: exposure %.1f > %.1f; the settings that cost most:\n%s", unit, score, maxExposure, failing(out))
			}
		})
	}
}

// failing keeps the lines of a security report that cost points.
func failing(report string) string {
	var b strings.Builder
	for line := range strings.Lines(report) {
		if strings.HasPrefix(line, "✗") {
			b.WriteString(line)
		}
	}
	return b.String()
}

// TestUnitsVerify runs `systemd-analyze verify` on the units, pointed at
// the packaged binaries: it reports unknown keys and bad values.
func TestUnitsVerify(t *testing.T) {
	tool(t, "systemd-analyze", "Debian's systemd")
	root := extract(t, allArches[2])
	dir := t.TempDir()
	var units []string
	for _, u := range []string{"edged.service", "edged-reconcile.service", "edged-reconcile.timer"} {
		b, err := os.ReadFile(filepath.Join(root, "usr/lib/systemd/system", u))
		if err != nil {
			t.Fatal(err)
		}
		b = []byte(strings.ReplaceAll(string(b), "ExecStart=/usr/bin/", "ExecStart="+root+"/usr/bin/"))
		if err := os.WriteFile(filepath.Join(dir, u), b, 0o644); err != nil {
			t.Fatal(err)
		}
		units = append(units, filepath.Join(dir, u))
	}
	out, err := runErr("systemd-analyze", append([]string{"verify"}, units...)...)
	if err != nil || out != "" {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// unit parses a unit file into key → values (repeated keys append).
func unit(t *testing.T, name string) map[string][]string {
	t.Helper()
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	keys := map[string][]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			keys[k] = append(keys[k], v)
		}
	}
	return keys
}

// TestUnitSettings pins what the units promise beyond the score: what edged
// needs to run (notify, watchdog, devices through groups) and what a better
// score must not buy by breaking it.
func TestUnitSettings(t *testing.T) {
	type want struct{ key, value string }
	check := func(t *testing.T, u map[string][]string, wants []want, absent []string) {
		t.Helper()
		for _, w := range wants {
			if !slices.Contains(u[w.key], w.value) {
				t.Errorf("%s=%s missing (have %q)", w.key, w.value, u[w.key])
			}
		}
		for _, k := range absent {
			if v, ok := u[k]; ok {
				t.Errorf("%s=%q must not be set", k, v)
			}
		}
	}

	edged := unit(t, "edged.service")
	check(t, edged, []want{
		{"Type", "notify"}, {"NotifyAccess", "main"}, {"WatchdogSec", "30s"}, {"Restart", "on-failure"},
		{"RestartSec", "3s"},
		{"ExecStart", "/usr/bin/edged run -c /etc/edged/edged.yaml --data-dir /var/lib/edged"},
		{"User", "edged"}, {"StateDirectory", "edged"}, {"ConfigurationDirectory", "edged"}, {"UMask", "0077"},
		{"DevicePolicy", "closed"}, {"DeviceAllow", "char-i2c rw"}, {"DeviceAllow", "char-gpiochip rw"},
		{"DeviceAllow", "/dev/gpiomem rw"}, {"ProtectSystem", "strict"}, {"NoNewPrivileges", "yes"},
		{"CapabilityBoundingSet", ""}, {"WantedBy", "multi-user.target"},
	}, []string{
		"PrivateDevices",      // would hide /dev/i2c-* and /dev/gpiochip*
		"PrivateUsers",        // would map the i2c and gpio groups to nobody
		"DynamicUser",         // a fresh uid each start cannot be put in those groups
		"ProcSubset",          // periph.io reads /proc/cpuinfo and /proc/device-tree
		"SupplementaryGroups", // fails the unit where the groups do not exist
	})
	// Every credential the unit loads must be created by postinst, or the
	// unit would not start.
	postinst, _ := os.ReadFile("scripts/edged/postinst")
	for _, lc := range edged["LoadCredential"] {
		name, path, _ := strings.Cut(lc, ":")
		if path != "/etc/edged/credentials/"+name || !strings.Contains(string(postinst), name) {
			t.Errorf("LoadCredential=%s: want /etc/edged/credentials/%s, created by postinst", lc, name)
		}
	}
	if len(edged["LoadCredential"]) != 3 {
		t.Errorf("LoadCredential: %q, want http-token, mqtt-password, influx-token", edged["LoadCredential"])
	}

	reconcile := unit(t, "edged-reconcile.service")
	check(t, reconcile, []want{
		{"Type", "oneshot"}, {"DynamicUser", "yes"}, {"PrivateDevices", "yes"}, {"PrivateUsers", "yes"},
		{"ExecStart", "/usr/bin/edged-reconcile run --config /etc/edged/reconcile.yaml"},
		{"ConditionPathExists", "/etc/edged/reconcile.yaml"},
		{"LoadCredential", "influx-token:/etc/edged/credentials/reconcile-influx-token"},
	}, []string{"WantedBy"}) // started by the timer only

	timer := unit(t, "edged-reconcile.timer")
	check(t, timer, []want{
		{"OnCalendar", "hourly"}, {"Persistent", "true"}, {"WantedBy", "timers.target"},
	}, nil)
	if len(timer["RandomizedDelaySec"]) == 0 {
		t.Error("RandomizedDelaySec missing")
	}
}
