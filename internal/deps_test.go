// Package internal_test checks the dependency boundaries of the two
// binaries (STYLE: edge-only and central-only dependencies stay apart).
package internal_test

import (
	"os/exec"
	"strings"
	"testing"
)

func deps(t *testing.T, pkg string) []string {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", pkg).CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps %s: %v\n%s", pkg, err, out)
	}
	return strings.Fields(string(out))
}

func TestBinariesKeepTheirDependenciesApart(t *testing.T) {
	rules := []struct {
		binary    string
		forbidden []string
	}{
		{"github.com/edged-io/edged/cmd/edged", []string{
			"github.com/edged-io/edged/sync/reconcile",
		}},
		{"github.com/edged-io/edged/cmd/edged-reconcile", []string{
			"periph.io/", "github.com/eclipse/paho.mqtt.golang", "github.com/edged-io/edged/sensors",
			"github.com/edged-io/edged/alerts",
		}},
	}
	for _, r := range rules {
		list := deps(t, r.binary)
		if len(list) < 10 {
			t.Fatalf("go list -deps %s listed only %d packages", r.binary, len(list))
		}
		for _, d := range list {
			for _, f := range r.forbidden {
				if strings.HasPrefix(d, f) {
					t.Errorf("%s links %s", r.binary, d)
				}
			}
		}
	}
}
