package notify

import (
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"
)

// ops is a little script: "A1" pushes event 1 for topic A, "take2" takes
// two entries in flight, "pop1" settles the take with one delivered.
func runQueue(t *testing.T, limit int, ops string) (*queue, int) {
	t.Helper()
	q := &queue{limit: limit}
	coalesced := 0
	for _, op := range strings.Fields(ops) {
		var n int
		switch {
		case strings.HasPrefix(op, "take"):
			fmt.Sscan(op[4:], &n)
			q.take(n)
		case strings.HasPrefix(op, "pop"):
			fmt.Sscan(op[3:], &n)
			q.pop(n)
		default:
			fmt.Sscan(op[1:], &n)
			coalesced += q.push(entry{topic: op[:1], ev: Event{ID: op, LSN: uint64(n)}})
		}
	}
	return q, coalesced
}

func contents(q *queue) string {
	var ids []string
	for _, e := range q.items[q.head:] {
		ids = append(ids, e.ev.ID)
	}
	return strings.Join(ids, " ")
}

func TestQueue(t *testing.T) {
	tests := []struct {
		name      string
		limit     int
		ops       string
		want      string
		coalesced int
	}{
		{"fifo below the limit", 10, "A1 B2 A3 B4", "A1 B2 A3 B4", 0},
		{"full: latest per topic, survivors in order", 5, "A1 B2 A3 B4 A5 C6", "B4 A5 C6", 3},
		{"the new event supersedes its topic", 5, "A1 B2 A3 B4 A5 C6 A7 B8 C9", "A7 B8 C9", 6},
		{"distinct topics: grows past the limit, drops nothing", 3, "A1 B2 C3 D4 E5", "A1 B2 C3 D4 E5", 0},
		{"distinct topics except the new one", 3, "A1 B2 C3 A4", "B2 C3 A4", 1},
		{"in-flight entries are never coalesced", 4, "A1 A2 B3 A4 take2 A5", "A1 A2 B3 A5", 1},
		{"a failed take returns to the head", 10, "A1 B2 C3 take3 pop1 D4", "B2 C3 D4", 0},
		{"drained then refilled", 2, "A1 A2 take2 pop2 B3 B4 B5", "B5", 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, n := runQueue(t, tt.limit, tt.ops)
			if got := contents(q); got != tt.want || n != tt.coalesced {
				t.Errorf("queue %q, coalesced %d; want %q, %d", got, n, tt.want, tt.coalesced)
			}
		})
	}
}

func TestQueueCompacts(t *testing.T) {
	q := &queue{limit: 1 << 20}
	for i := range 5000 {
		q.push(entry{topic: "t", ev: Event{LSN: uint64(i)}})
		if i%2 == 1 {
			q.take(1)
			q.pop(1)
		}
	}
	if q.len() != 2500 || q.head > len(q.items)/2+1024 {
		t.Fatalf("len %d head %d items %d: the consumed prefix is not reclaimed", q.len(), q.head, len(q.items))
	}
	if got := q.items[q.head].ev.LSN; got != 2500 {
		t.Fatalf("head is event %d, want 2500", got)
	}
}

func TestMark(t *testing.T) {
	var none mark
	if none.covers(0, 0) {
		t.Error("no mark covers (0, 0)")
	}
	m := none.advance(5, 2)
	for _, c := range []struct {
		lsn  uint64
		seq  uint32
		want bool
	}{{4, 9, true}, {5, 1, true}, {5, 2, true}, {5, 3, false}, {6, 0, false}} {
		if got := m.covers(c.lsn, c.seq); got != c.want {
			t.Errorf("(5,2).covers(%d,%d) = %v", c.lsn, c.seq, got)
		}
	}
	if got := m.advance(4, 0); got != m {
		t.Errorf("advance went back to %+v", got)
	}

	dir := t.TempDir()
	if got, err := loadMark(dir); err != nil || got.ok {
		t.Fatalf("loadMark(empty dir) = %+v, %v", got, err)
	}
	if err := saveMark(dir, m); err != nil {
		t.Fatal(err)
	}
	if got, err := loadMark(dir); err != nil || got != m {
		t.Fatalf("loadMark = %+v, %v; want %+v", got, err, m)
	}
}

func TestEncode(t *testing.T) {
	e := Event{Rule: "r", Series: "a/b", State: "firing", Value: math.NaN(), Threshold: 30, Severity: "warning",
		Started: 1_700_000_000_123_456_789, ID: "id1"}
	got := string(encode(&e, "pi"))
	want := `{"rule":"r","device":"pi","series":"a/b","state":"firing","value":null,"threshold":30,"severity":"warning",` +
		`"labels":{},"started":"2023-11-14T22:13:20.123456789Z","event_id":"id1","renotify":false}`
	if got != want {
		t.Errorf("encode =\n%s\nwant\n%s", got, want)
	}
	e.Value, e.Resolved, e.Labels, e.Renotify = 31.5, 1_700_000_060_000_000_000, map[string]string{"z": "1", "a": "2"}, true
	if got := string(encode(&e, "pi")); !strings.Contains(got, `"value":31.5`) ||
		!strings.Contains(got, `"labels":{"a":"2","z":"1"}`) || !strings.Contains(got, `"resolved":"2023-11-14T22:14:20Z"`) ||
		!strings.Contains(got, `"renotify":true`) {
		t.Errorf("encode = %s", got)
	}
	inf := Event{Value: math.Inf(1), Threshold: math.Inf(-1)}
	var p payload
	if err := json.Unmarshal(encode(&inf, "pi"), &p); err != nil || p.Value != nil || p.Threshold != nil {
		t.Errorf("±Inf: %+v, %v", p, err)
	}
	if !reflect.DeepEqual(p.Labels, map[string]string{}) {
		t.Errorf("nil labels encode as %v, want {}", p.Labels)
	}
}
