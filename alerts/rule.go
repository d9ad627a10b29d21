package alerts

import (
	"fmt"
	"math"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/edged-io/edged/internal/yamltype"
)

// Rule is one alert rule as written in the config file. Exactly one of
// Above, Below, RateAbove, RateBelow and Absent is set; see the package
// documentation for what each means.
type Rule struct {
	// Name identifies the rule; it becomes an MQTT topic level, so it is
	// made of [a-z0-9_-] only. Names are unique within a rule set.
	Name string `yaml:"name"`
	// Series is a path.Match pattern over series names, e.g.
	// "greenhouse/*" ('*' does not cross '/').
	Series string `yaml:"series"`
	// Device is a path.Match pattern over device ids; empty matches all.
	Device string `yaml:"device,omitempty"`

	// Window and Aggregate, set together, evaluate the rule on each closed
	// window of that size instead of on raw readings. Aggregate is one of
	// mean, min, max, sum, count, first, last, or pNN (a quantile, e.g.
	// p50, p95, p99.9: the aggregator must be configured to compute it).
	Window    Duration `yaml:"window,omitempty"`
	Aggregate string   `yaml:"aggregate,omitempty"`

	// Above fires when a value is > Above and clears when one is <
	// ClearBelow (default Above). Below mirrors it.
	Above      *float64 `yaml:"above,omitempty"`
	ClearBelow *float64 `yaml:"clear_below,omitempty"`
	Below      *float64 `yaml:"below,omitempty"`
	ClearAbove *float64 `yaml:"clear_above,omitempty"`
	// RateAbove and RateBelow apply to the change per second between
	// consecutive values (by event time, or window start), with
	// ClearBelow and ClearAbove respectively as their clear thresholds.
	RateAbove *float64 `yaml:"rate_above,omitempty"`
	RateBelow *float64 `yaml:"rate_below,omitempty"`
	// Absent fires when a series that has been heard from is then silent
	// for this long (processing time).
	Absent Duration `yaml:"absent,omitempty"`

	// For is how long the condition must hold before the alert fires; it
	// is pending meanwhile.
	For Duration `yaml:"for,omitempty"`
	// Severity is info, warning (the default) or critical.
	Severity string `yaml:"severity,omitempty"`
	// Labels are passed through to every event of the rule.
	Labels map[string]string `yaml:"labels,omitempty"`
	// Renotify, when positive, repeats the firing event of a still-firing
	// alert at most this often (on ticks). Zero never repeats it.
	Renotify Duration `yaml:"renotify,omitempty"`
}

// Duration is a time.Duration written in YAML as a Go duration string
// ("30s", "5m", "1h30m").
type Duration = yamltype.Duration

// Severities.
const (
	SeverityInfo     = "info"
	SeverityWarning  = "warning"
	SeverityCritical = "critical"
)

// RuleError reports an invalid rule. Index is the rule's position in the
// list given to ValidateRules or New (-1 from Rule.Validate), so that a
// config loader can point at its line.
type RuleError struct {
	Index  int
	Name   string
	Reason string
}

func (e *RuleError) Error() string {
	var b strings.Builder
	b.WriteString("alerts: ")
	if e.Index >= 0 {
		fmt.Fprintf(&b, "rules[%d]", e.Index)
	} else {
		b.WriteString("rule")
	}
	if e.Name != "" {
		fmt.Fprintf(&b, " %q", e.Name)
	}
	return b.String() + ": " + e.Reason
}

// Validate reports the first problem with r as a *RuleError.
func (r *Rule) Validate() error {
	_, err := compile(r, -1)
	return err
}

// ValidateRules validates every rule and rejects duplicate names.
func ValidateRules(rules []Rule) error {
	_, err := compileAll(rules)
	return err
}

// Quantile returns the quantile a pNN aggregate asks for (p95: 0.95), so
// that the daemon can check the aggregator computes it; ok is false for
// other rules.
func (r *Rule) Quantile() (q float64, ok bool) {
	a, q, err := parseAggregate(r.Aggregate)
	return q, err == nil && a == aggQuantile
}

type kind uint8

const (
	kindAbove kind = iota + 1
	kindBelow
	kindRateAbove
	kindRateBelow
	kindAbsent
)

func (k kind) rate() bool { return k == kindRateAbove || k == kindRateBelow }

type aggFunc uint8

const (
	aggNone aggFunc = iota
	aggMean
	aggMin
	aggMax
	aggSum
	aggCount
	aggFirst
	aggLast
	aggQuantile
)

var aggregateNames = map[string]aggFunc{
	"mean": aggMean, "min": aggMin, "max": aggMax, "sum": aggSum,
	"count": aggCount, "first": aggFirst, "last": aggLast,
}

// rule is a validated Rule in the form the engine evaluates.
type rule struct {
	*Rule
	index       int
	kind        kind
	fire, clear float64 // thresholds; for absence both are Absent in seconds
	window      int64   // ns; 0 for raw readings
	agg         aggFunc
	q           float64
	forNs       int64
	absentNs    int64
	renotifyNs  int64
	severity    string
}

// fires reports whether v meets the firing condition (strictly beyond the
// threshold), clears whether it is strictly beyond the clear threshold: a
// value equal to the clear threshold keeps a firing alert firing.
func (r *rule) fires(v float64) bool {
	if r.kind == kindAbove || r.kind == kindRateAbove {
		return v > r.fire
	}
	return v < r.fire
}

func (r *rule) clears(v float64) bool {
	if r.kind == kindAbove || r.kind == kindRateAbove {
		return v < r.clear
	}
	return v > r.clear
}

func (r *rule) matches(device, series string) bool {
	ok, _ := path.Match(r.Series, series)
	if ok && r.Device != "" {
		ok, _ = path.Match(r.Device, device)
	}
	return ok
}

func validName(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for _, c := range []byte(s) {
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func parseAggregate(s string) (aggFunc, float64, error) {
	if a, ok := aggregateNames[s]; ok {
		return a, 0, nil
	}
	if p, ok := strings.CutPrefix(s, "p"); ok && p != "" && p[0] != '+' && p[0] != '-' {
		if v, err := strconv.ParseFloat(p, 64); err == nil && v >= 0 && v <= 100 {
			return aggQuantile, v / 100, nil
		}
	}
	return aggNone, 0, fmt.Errorf("aggregate %q is not one of mean, min, max, sum, count, first, last, pNN (e.g. p95)", s)
}

func compileAll(rules []Rule) ([]rule, error) {
	out := make([]rule, len(rules))
	seen := make(map[string]int, len(rules))
	for i := range rules {
		c, err := compile(&rules[i], i)
		if err != nil {
			return nil, err
		}
		if j, dup := seen[c.Name]; dup {
			return nil, &RuleError{i, c.Name, fmt.Sprintf("name already used by rules[%d]", j)}
		}
		seen[c.Name] = i
		out[i] = c
	}
	return out, nil
}

func compile(r *Rule, index int) (rule, error) {
	c := rule{Rule: r, index: index, severity: r.Severity}
	fail := func(format string, args ...any) (rule, error) {
		return rule{}, &RuleError{index, r.Name, fmt.Sprintf(format, args...)}
	}
	if r.Name == "" {
		return fail("name is required")
	}
	if !validName(r.Name) {
		return fail("name may only hold a-z, 0-9, _ and - (it is an MQTT topic level), at most 128 of them")
	}
	if r.Series == "" {
		return fail("series is required (a pattern such as greenhouse/* or *)")
	}
	if _, err := path.Match(r.Series, ""); err != nil {
		return fail("series %q is not a valid pattern (path.Match syntax)", r.Series)
	}
	if _, err := path.Match(r.Device, ""); err != nil {
		return fail("device %q is not a valid pattern (path.Match syntax)", r.Device)
	}

	var set []string
	for _, k := range []struct {
		name string
		v    *float64
		kind kind
	}{{"above", r.Above, kindAbove}, {"below", r.Below, kindBelow}, {"rate_above", r.RateAbove, kindRateAbove}, {"rate_below", r.RateBelow, kindRateBelow}} {
		if k.v == nil {
			continue
		}
		set = append(set, k.name)
		if math.IsNaN(*k.v) || math.IsInf(*k.v, 0) {
			return fail("%s must be a finite number", k.name)
		}
		c.kind, c.fire = k.kind, *k.v
	}
	if r.Absent != 0 {
		set = append(set, "absent")
		c.kind = kindAbsent
	}
	if len(set) != 1 {
		if len(set) == 0 {
			return fail("no condition: set one of above, below, rate_above, rate_below, absent")
		}
		return fail("%s are all set: a rule has exactly one of above, below, rate_above, rate_below, absent", strings.Join(set, ", "))
	}

	// Clear thresholds: clear_below goes with the upward conditions,
	// clear_above with the downward ones.
	up := c.kind == kindAbove || c.kind == kindRateAbove
	c.clear = c.fire
	switch {
	case r.ClearBelow != nil && !up:
		return fail("clear_below goes with above or rate_above, not %s", set[0])
	case r.ClearAbove != nil && (up || c.kind == kindAbsent):
		return fail("clear_above goes with below or rate_below, not %s", set[0])
	case r.ClearBelow != nil:
		c.clear = *r.ClearBelow
		if math.IsNaN(c.clear) || c.clear > c.fire {
			return fail("clear_below (%v) must be a number not above %s (%v)", c.clear, set[0], c.fire)
		}
	case r.ClearAbove != nil:
		c.clear = *r.ClearAbove
		if math.IsNaN(c.clear) || c.clear < c.fire {
			return fail("clear_above (%v) must be a number not below %s (%v)", c.clear, set[0], c.fire)
		}
	}

	if r.Window != 0 || r.Aggregate != "" {
		if r.Window <= 0 {
			return fail("aggregate %q needs a positive window (e.g. window: 1m)", r.Aggregate)
		}
		if r.Aggregate == "" {
			return fail("window %v needs an aggregate (mean, min, max, sum, count, first, last or pNN)", r.Window)
		}
		if c.kind == kindAbsent {
			return fail("absent applies to raw readings, not to windows: remove window and aggregate")
		}
		var err error
		if c.agg, c.q, err = parseAggregate(r.Aggregate); err != nil {
			return fail("%v", err)
		}
		c.window = int64(r.Window)
	}

	for _, d := range []struct {
		name string
		v    Duration
	}{{"absent", r.Absent}, {"for", r.For}, {"renotify", r.Renotify}} {
		if d.v < 0 {
			return fail("%s must not be negative (got %v)", d.name, d.v)
		}
	}
	c.forNs, c.absentNs, c.renotifyNs = int64(r.For), int64(r.Absent), int64(r.Renotify)
	if c.kind == kindAbsent {
		c.fire = time.Duration(r.Absent).Seconds()
		c.clear = c.fire
	}

	switch r.Severity {
	case "":
		c.severity = SeverityWarning
	case SeverityInfo, SeverityWarning, SeverityCritical:
	default:
		return fail("severity %q is not info, warning or critical", r.Severity)
	}
	for k := range r.Labels {
		if k == "" {
			return fail("labels: empty label name")
		}
	}
	return c, nil
}
