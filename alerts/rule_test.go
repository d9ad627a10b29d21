package alerts

import (
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

func f(v float64) *float64 { return &v }

func TestValidate(t *testing.T) {
	ok := Rule{Name: "hot", Series: "greenhouse/*", Above: f(30)}
	with := func(mod func(*Rule)) Rule {
		r := ok
		mod(&r)
		return r
	}
	tests := []struct {
		name string
		rule Rule
		want string // substring of the error; "" for valid
	}{
		{"valid above", ok, ""},
		{"valid below", Rule{Name: "cold", Series: "*", Below: f(5), ClearAbove: f(7), Severity: "critical"}, ""},
		{"valid rate", Rule{Name: "r", Series: "*", RateBelow: f(-1), ClearAbove: f(0)}, ""},
		{"valid absent", Rule{Name: "gone", Series: "*", Device: "pi-?", Absent: Duration(time.Minute), For: Duration(time.Second)}, ""},
		{"valid window", Rule{Name: "w", Series: "*", Window: Duration(time.Minute), Aggregate: "p99.9", Above: f(1)}, ""},
		{"clear equal", with(func(r *Rule) { r.ClearBelow = f(30) }), ""},
		{"no name", with(func(r *Rule) { r.Name = "" }), `alerts: rule: name is required`},
		{"bad name", with(func(r *Rule) { r.Name = "Hot/1" }), `alerts: rule "Hot/1": name may only hold a-z, 0-9, _ and -`},
		{"long name", with(func(r *Rule) { r.Name = strings.Repeat("a", 129) }), `at most 128`},
		{"no series", with(func(r *Rule) { r.Series = "" }), `rule "hot": series is required`},
		{"bad series", with(func(r *Rule) { r.Series = "a/[" }), `series "a/[" is not a valid pattern`},
		{"bad device", with(func(r *Rule) { r.Device = "[" }), `device "[" is not a valid pattern`},
		{"no condition", with(func(r *Rule) { r.Above = nil }), `no condition: set one of above, below, rate_above, rate_below, absent`},
		{"two conditions", with(func(r *Rule) { r.Below = f(1); r.Absent = Duration(time.Second) }), `above, below, absent are all set`},
		{"nan", with(func(r *Rule) { r.Above = f(math.NaN()) }), `above must be a finite number`},
		{"inf", Rule{Name: "x", Series: "*", RateAbove: f(math.Inf(1))}, `rate_above must be a finite number`},
		{"clear_below above", with(func(r *Rule) { r.ClearBelow = f(31) }), `rule "hot": clear_below (31) must be a number not above above (30)`},
		{"clear_below nan", with(func(r *Rule) { r.ClearBelow = f(math.NaN()) }), `clear_below (NaN) must be a number`},
		{"clear_above below", Rule{Name: "c", Series: "*", Below: f(5), ClearAbove: f(4)}, `clear_above (4) must be a number not below below (5)`},
		{"clear_below with below", Rule{Name: "c", Series: "*", Below: f(5), ClearBelow: f(4)}, `clear_below goes with above or rate_above, not below`},
		{"clear_above with above", with(func(r *Rule) { r.ClearAbove = f(31) }), `clear_above goes with below or rate_below, not above`},
		{"clear_above with absent", Rule{Name: "a", Series: "*", Absent: Duration(time.Second), ClearAbove: f(1)}, `clear_above goes with below or rate_below, not absent`},
		{"aggregate without window", with(func(r *Rule) { r.Aggregate = "mean" }), `aggregate "mean" needs a positive window`},
		{"window without aggregate", with(func(r *Rule) { r.Window = Duration(time.Minute) }), `window 1m0s needs an aggregate`},
		{"negative window", with(func(r *Rule) { r.Window = -1; r.Aggregate = "max" }), `needs a positive window`},
		{"bad aggregate", with(func(r *Rule) { r.Window = Duration(time.Minute); r.Aggregate = "median" }), `aggregate "median" is not one of`},
		{"bad quantile", with(func(r *Rule) { r.Window = Duration(time.Minute); r.Aggregate = "p101" }), `aggregate "p101" is not one of`},
		{"signed quantile", with(func(r *Rule) { r.Window = Duration(time.Minute); r.Aggregate = "p+5" }), `aggregate "p+5"`},
		{"absent window", Rule{Name: "a", Series: "*", Absent: Duration(time.Second), Window: Duration(time.Minute), Aggregate: "count"}, `absent applies to raw readings`},
		{"negative absent", Rule{Name: "a", Series: "*", Absent: -1}, `absent must not be negative`},
		{"negative for", with(func(r *Rule) { r.For = Duration(-time.Second) }), `for must not be negative (got -1s)`},
		{"negative renotify", with(func(r *Rule) { r.Renotify = -1 }), `renotify must not be negative`},
		{"bad severity", with(func(r *Rule) { r.Severity = "fatal" }), `severity "fatal" is not info, warning or critical`},
		{"empty label", with(func(r *Rule) { r.Labels = map[string]string{"": "x"} }), `labels: empty label name`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.rule.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			var re *RuleError
			if err == nil || !errors.As(err, &re) || re.Index != -1 {
				t.Fatalf("Validate = %v, want a *RuleError with index -1", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate = %q, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestValidateRules(t *testing.T) {
	rules := []Rule{
		{Name: "hot", Series: "*", Above: f(1)},
		{Name: "cold", Series: "*", Below: f(1)},
		{Name: "hot", Series: "x", Absent: Duration(time.Second)},
	}
	err := ValidateRules(rules)
	var re *RuleError
	if !errors.As(err, &re) || re.Index != 2 || err.Error() != `alerts: rules[2] "hot": name already used by rules[0]` {
		t.Fatalf("duplicate: %v", err)
	}
	rules[2] = Rule{Name: "bad", Series: "*"}
	if err := ValidateRules(rules); !errors.As(err, &re) || re.Index != 2 || re.Name != "bad" {
		t.Fatalf("invalid third rule: %v", err)
	}
	if _, err := New(rules, Options{}); !errors.As(err, &re) {
		t.Fatalf("New accepted an invalid rule: %v", err)
	}
	if err := ValidateRules(rules[:2]); err != nil {
		t.Fatal(err)
	}
}

func TestRuleYAML(t *testing.T) {
	const doc = `
- name: hot
  series: greenhouse/*
  device: pi-*
  above: 30
  clear_below: 28.5
  for: 1m30s
  severity: critical
  labels: {room: greenhouse}
  renotify: 1h
- name: p95
  series: "*"
  window: 1m
  aggregate: p95
  below: 0
- name: gone
  series: "*"
  absent: 5m
`
	var rules []Rule
	if err := yaml.Unmarshal([]byte(doc), &rules); err != nil {
		t.Fatal(err)
	}
	if err := ValidateRules(rules); err != nil {
		t.Fatal(err)
	}
	r := rules[0]
	if *r.Above != 30 || *r.ClearBelow != 28.5 || r.For != Duration(90*time.Second) || r.Renotify != Duration(time.Hour) ||
		r.Labels["room"] != "greenhouse" || r.Device != "pi-*" {
		t.Fatalf("rule 0 = %+v", r)
	}
	if q, ok := rules[1].Quantile(); !ok || q != 0.95 {
		t.Fatalf("Quantile = %v, %v", q, ok)
	}
	if _, ok := rules[0].Quantile(); ok {
		t.Fatal("Quantile of a raw rule")
	}
	if rules[2].Absent != Duration(5*time.Minute) {
		t.Fatalf("absent = %v", rules[2].Absent)
	}
	out, err := yaml.Marshal(rules[2])
	if err != nil || !strings.Contains(string(out), "absent: 5m0s") {
		t.Fatalf("Marshal: %s %v", out, err)
	}

	for _, bad := range []struct{ doc, want string }{
		{"- name: x\n  series: '*'\n  absent: 5\n", `line 3: "5" is not a duration (write e.g. 30s, 5m or 1h)`},
		{"- name: x\n  series: '*'\n  for: [1s]\n", `line 3: a duration must be a string`},
	} {
		var rs []Rule
		if err := yaml.Unmarshal([]byte(bad.doc), &rs); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%q: %v, want %q", bad.doc, err, bad.want)
		}
	}
}

// TestEventID pins the id to its documented definition, which the
// delivery layer and the retained MQTT state rely on across versions.
func TestEventID(t *testing.T) {
	h := fnv.New64a()
	h.Write([]byte("hot\x00pi-1\x00greenhouse/temperature\x00"))
	h.Write([]byte{0, 0, 0, 0, 0, 0, 0x01, 0x02, 0, 0, 0, 3})
	want := h.Sum(nil)
	got := eventID("hot", "pi-1", "greenhouse/temperature", 0x102, 3)
	if got != fmt.Sprintf("%x", want) {
		t.Fatalf("eventID = %s, want %x", got, want)
	}
}
