// Package yamltype holds the value types edged's YAML files share: the
// daemon's configuration (internal/config), alert rules (alerts) and the
// reconciliation job's configuration (sync/reconcile).
package yamltype

import (
	"fmt"
	"time"

	"gopkg.in/yaml.v3"
)

// Duration is a time.Duration written in YAML as a Go duration string
// ("500ms", "30s", "1h30m"). It may be negative: whoever reads it says
// what a negative one means, or refuses it.
type Duration time.Duration

// UnmarshalYAML parses a duration string; the error names the line.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: a duration must be a string like 30s, 5m or 1h", n.Line)
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %q is not a duration (write e.g. 30s, 5m or 1h)", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes the duration as a string.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// String formats the duration as time.Duration does.
func (d Duration) String() string { return time.Duration(d).String() }
