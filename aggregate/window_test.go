package aggregate

import (
	"testing"
	"time"
)

func TestSizeName(t *testing.T) {
	for d, want := range map[time.Duration]string{10 * time.Second: "10s", time.Minute: "1m", time.Hour: "1h",
		90 * time.Minute: "1h30m", 500 * time.Millisecond: "500ms", time.Hour + 30*time.Second: "1h0m30s",
		24 * time.Hour: "24h", 90 * time.Second: "1m30s"} {
		if got := SizeName(d); got != want {
			t.Errorf("SizeName(%v) = %q, want %q", d, got, want)
		}
	}
}
