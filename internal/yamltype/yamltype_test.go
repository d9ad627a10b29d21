package yamltype

import (
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

func TestDuration(t *testing.T) {
	var v struct {
		A Duration `yaml:"a"`
		B Duration `yaml:"b"`
	}
	if err := yaml.Unmarshal([]byte("a: 1h30m\nb: -5s\n"), &v); err != nil {
		t.Fatal(err)
	}
	if time.Duration(v.A) != 90*time.Minute || time.Duration(v.B) != -5*time.Second {
		t.Fatalf("%v %v", v.A, v.B)
	}
	out, err := yaml.Marshal(v)
	if err != nil || string(out) != "a: 1h30m0s\nb: -5s\n" {
		t.Fatalf("%q %v", out, err)
	}
	for in, want := range map[string]string{
		"a: soon\n":   `line 1: "soon" is not a duration`,
		"\na: 10\n":   `line 2: "10" is not a duration`,
		"a: [1s]\n":   "line 1: a duration must be a string",
		"a: {x: 1}\n": "line 1: a duration must be a string",
	} {
		err := yaml.Unmarshal([]byte(in), &v)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", in, err, want)
		}
	}
}
