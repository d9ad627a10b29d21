package config

import (
	"strings"
	"testing"
)

func TestAggregateView(t *testing.T) {
	c, err := Parse("x.yaml", []byte("aggregate: {windows: [10s]}\n"))
	if err != nil || c.Aggregate.View != "v1" {
		t.Fatalf("default view %q, %v", c.Aggregate.View, err)
	}
	c, err = Parse("x.yaml", []byte("aggregate:\n  view: fix-2\n"))
	if err != nil || c.Aggregate.View != "fix-2" {
		t.Fatalf("view %q, %v", c.Aggregate.View, err)
	}
	for _, bad := range []string{"10s", "ACTIVE", "../v2", "checkpoint"} {
		_, err := Parse("x.yaml", []byte("aggregate:\n  view: "+bad+"\n"))
		if err == nil || !strings.Contains(err.Error(), "x.yaml:2") || !strings.Contains(err.Error(), "aggregate.view") {
			t.Errorf("view %q: %v", bad, err)
		}
	}
}
