package daemon

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/edged-io/edged/aggregate"
)

func TestWindowJSONSeriesKey(t *testing.T) {
	w := aggregate.Window{Device: `pi"series"`, Series: "s17", Size: 10 * time.Second, Start: 1_700_000_000e9, End: 1_700_000_010e9,
		Count: 2, Sum: 3, Min: 1, Max: 2, Mean: 1.5}
	for key, want := range map[string]string{"": "series", "series": "series", "sensor": "sensor"} {
		var m map[string]any
		if err := json.Unmarshal(windowJSON(w, key), &m); err != nil {
			t.Fatal(err)
		}
		if m[want] != "s17" || m["device"] != `pi"series"` || m["window_start"] != float64(1_700_000_000_000) || m["count"] != float64(2) {
			t.Errorf("series_key %q: %v", key, m)
		}
		if want != "series" && m["series"] != nil {
			t.Errorf("series_key %q: the series key stayed: %v", key, m)
		}
	}
}
