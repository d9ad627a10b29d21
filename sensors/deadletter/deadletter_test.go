package deadletter

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edged-io/edged/sensors/payload"
)

// rejecter is the interface the MQTT source (sensors.Rejecter) calls.
type rejecter interface {
	Reject(topic string, payload []byte, err error)
}

var _ rejecter = (*Store)(nil)

var t0 = time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)

func entry(i int) Entry {
	return Entry{
		Time:    t0.Add(time.Duration(i) * time.Second),
		Topic:   fmt.Sprintf("tele/dev%d/SENSOR", i),
		Reason:  payload.ReasonInvalidJSON,
		Detail:  "unexpected end of input at byte 12",
		Payload: []byte(fmt.Sprintf(`{"n":%d,`, i)),
	}
}

func open(t *testing.T, dir string, o Options) *Store {
	t.Helper()
	s, err := Open(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func topics(es []Entry) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.Topic)
	}
	return out
}

func TestBoundedByCount(t *testing.T) {
	s := open(t, t.TempDir(), Options{MaxEntries: 5})
	for i := range 12 {
		if err := s.Add(entry(i)); err != nil {
			t.Fatal(err)
		}
	}
	got := s.List(0)
	if len(got) != 5 || got[0].Topic != "tele/dev11/SENSOR" || got[4].Topic != "tele/dev7/SENSOR" {
		t.Fatalf("List = %v, want dev11 … dev7", topics(got))
	}
	if got := s.List(2); len(got) != 2 || got[1].Topic != "tele/dev10/SENSOR" {
		t.Fatalf("List(2) = %v", topics(got))
	}
	if st := s.Stats(); st.Entries != 5 || st.Evicted != 7 {
		t.Fatalf("Stats = %+v", st)
	}
	if c := s.Counts(); c[payload.ReasonInvalidJSON] != 12 {
		t.Fatalf("Counts = %v: evicted entries must stay counted", c)
	}
}

func TestBoundedByBytes(t *testing.T) {
	s := open(t, "", Options{MaxBytes: 4000, MaxPayload: 1000})
	big := bytes.Repeat([]byte("x"), 5000)
	for i := range 10 {
		e := entry(i)
		e.Payload = big
		s.Add(e)
	}
	st := s.Stats()
	if st.Bytes > 4000 || st.Entries != 3 {
		t.Fatalf("Stats = %+v, want 3 entries within 4000 bytes", st)
	}
	got := s.List(0)
	if got[0].Topic != "tele/dev9/SENSOR" || len(got[0].Payload) != 1000 || got[0].Size != 5000 || !got[0].Truncated() {
		t.Fatalf("newest entry = %+v", got[0])
	}
	// One entry bigger than the budget is still kept: the newest always is.
	s2 := open(t, "", Options{MaxBytes: 10})
	s2.Add(entry(1))
	s2.Add(entry(2))
	if got := s2.List(0); len(got) != 1 || got[0].Topic != "tele/dev2/SENSOR" {
		t.Fatalf("List = %v", topics(got))
	}
}

func TestTruncateKeepsRunes(t *testing.T) {
	s := open(t, "", Options{MaxPayload: 5})
	s.Add(Entry{Topic: "t", Reason: payload.ReasonNotANumber, Payload: []byte("21.5°C")}) // ° is 2 bytes at 4..5
	e := s.List(1)[0]
	if string(e.Payload) != "21.5" || e.Size != 7 {
		t.Fatalf("entry = %q size %d", e.Payload, e.Size)
	}
}

func TestCallerMayReusePayload(t *testing.T) {
	s := open(t, "", Options{})
	buf := []byte("abc")
	s.Add(Entry{Topic: "t", Reason: payload.ReasonNotANumber, Payload: buf})
	copy(buf, "xyz")
	if got := s.List(1)[0].Payload; string(got) != "abc" {
		t.Fatalf("payload %q changed with the caller's buffer", got)
	}
	got := s.List(1)[0]
	got.Payload[0] = 'Q'
	if again := s.List(1)[0].Payload; string(again) != "abc" {
		t.Fatalf("List shares payloads with the store: %q", again)
	}
}

func TestPersistAcrossReopen(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.Add(entry(1))
	s.Add(Entry{Time: t0, Topic: "bin", Reason: payload.ReasonNotANumber, Payload: []byte{0xff, 0, 1}})
	s.Add(Entry{Time: t0, Topic: "html", Reason: payload.ReasonInvalidJSON, Payload: []byte(`<b>&"</b>`)})
	want := s.List(0)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := s.Add(entry(9)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Add after Close: %v", err)
	}

	// The file is for people: one JSON object per line, text payloads readable.
	raw, err := os.ReadFile(filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(raw)), "\n")
	if len(lines) != 3 || !strings.Contains(lines[0], `"payload":"{\"n\":1,"`) ||
		!strings.Contains(lines[1], `"payload_base64":"/wAB"`) || !strings.Contains(lines[2], `"payload":"<b>&\"</b>"`) {
		t.Fatalf("file:\n%s", raw)
	}

	s2 := open(t, dir, Options{})
	got := s2.List(0)
	if len(got) != len(want) {
		t.Fatalf("after reopen %d entries, want %d", len(got), len(want))
	}
	for i := range got {
		if !got[i].Time.Equal(want[i].Time) || got[i].Topic != want[i].Topic || got[i].Reason != want[i].Reason ||
			got[i].Detail != want[i].Detail || !bytes.Equal(got[i].Payload, want[i].Payload) || got[i].Size != want[i].Size {
			t.Fatalf("entry %d after reopen = %+v, want %+v", i, got[i], want[i])
		}
	}
	if c := s2.Counts(); len(c) != 0 {
		t.Fatalf("Counts after reopen = %v; counters start at Open", c)
	}
}

func TestRotation(t *testing.T) {
	dir := t.TempDir()
	const cap = 2000
	s := open(t, dir, Options{MaxFileBytes: cap, MaxEntries: 1000})
	for i := range 100 {
		if err := s.Add(entry(i)); err != nil {
			t.Fatal(err)
		}
	}
	cur, old := filepath.Join(dir, FileName), filepath.Join(dir, RotatedName)
	for _, p := range []string{cur, old} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() > cap {
			t.Fatalf("%s is %d bytes, cap %d", p, fi.Size(), cap)
		}
	}
	s.Close()
	// Reopening reads the rotated file, then the current one: the newest
	// entries survive, in order, and nothing older than the rotated file.
	s2 := open(t, dir, Options{})
	got := s2.List(0)
	if len(got) == 0 || got[0].Topic != "tele/dev99/SENSOR" {
		t.Fatalf("after reopen: %v", topics(got))
	}
	for i := 1; i < len(got); i++ {
		if !got[i].Time.Before(got[i-1].Time) {
			t.Fatalf("entries out of order: %v", topics(got))
		}
	}
	if n := countLines(t, cur) + countLines(t, old); len(got) != n {
		t.Fatalf("%d entries read back from %d lines", len(got), n)
	}
}

func countLines(t *testing.T, path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Count(b, []byte("\n"))
}

func TestTornLastLine(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, Options{})
	s.Add(entry(1))
	s.Close()
	// A power cut tore the next line.
	f, err := os.OpenFile(filepath.Join(dir, FileName), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"time":"2024-05-01T12:00:02Z","topic":"torn","rea`)
	f.Close()

	s2 := open(t, dir, Options{})
	if st := s2.Stats(); st.Skipped != 1 || st.Entries != 1 {
		t.Fatalf("Stats = %+v, want 1 entry and 1 skipped line", st)
	}
	s2.Add(entry(3))
	s2.Close()
	s3 := open(t, dir, Options{})
	if got := topics(s3.List(0)); strings.Join(got, ",") != "tele/dev3/SENSOR,tele/dev1/SENSOR" {
		t.Fatalf("after a torn line and a new entry: %v", got)
	}
}

func TestWriteErrorKeepsEntry(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, Options{MaxFileBytes: 300})
	s.Add(entry(1))
	// Rotation cannot rename over a non-empty directory.
	if err := os.MkdirAll(filepath.Join(dir, RotatedName, "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	for i := 2; i < 6; i++ {
		s.Add(entry(i))
	}
	st := s.Stats()
	if st.WriteErrors == 0 || st.LastWriteError == nil || st.Entries != 5 {
		t.Fatalf("Stats = %+v, want write errors and all 5 entries in memory", st)
	}
	if fi, _ := os.Stat(filepath.Join(dir, FileName)); fi.Size() > 300 {
		t.Fatalf("file grew past its cap to %d bytes", fi.Size())
	}
	// Once rotation works again, writing resumes.
	os.RemoveAll(filepath.Join(dir, RotatedName))
	if err := s.Add(entry(6)); err != nil {
		t.Fatalf("Add after the fault cleared: %v", err)
	}
	if s.Stats().LastWriteError != nil {
		t.Fatal("LastWriteError not cleared by a good write")
	}
}

func TestReject(t *testing.T) {
	s := open(t, "", Options{Now: func() time.Time { return t0 }})
	s.Reject("greenhouse/t", []byte("21.5°C"), &payload.Error{Reason: payload.ReasonNotANumber, Detail: `"21.5°C" is not a number`, Topic: "greenhouse/t"})
	s.Reject("x", []byte("1"), fmt.Errorf("mqtt: no subscription matches topic %q", "x"))
	s.Reject("y", nil, fmt.Errorf("wrapped: %w", &payload.Error{Reason: payload.ReasonEmpty, Topic: "y"}))
	got := s.List(0)
	if got[2].Reason != payload.ReasonNotANumber || got[2].Detail != `"21.5°C" is not a number` || !got[2].Time.Equal(t0) {
		t.Fatalf("entry = %+v", got[2])
	}
	if got[1].Reason != ReasonOther || !strings.Contains(got[1].Detail, "no subscription") {
		t.Fatalf("entry = %+v", got[1])
	}
	want := map[payload.Reason]uint64{payload.ReasonNotANumber: 1, ReasonOther: 1, payload.ReasonEmpty: 1}
	if fmt.Sprint(s.Counts()) != fmt.Sprint(want) {
		t.Fatalf("Counts = %v, want %v", s.Counts(), want)
	}
}

func TestConcurrentAdd(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, Options{MaxEntries: 100, MaxFileBytes: 16 << 10})
	reasons := payload.Reasons()
	const workers, each = 8, 200
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				e := entry(w*each + i)
				e.Reason = reasons[(w+i)%len(reasons)]
				s.Add(e)
				if i%50 == 0 {
					s.List(10)
					s.Counts()
					s.Stats()
				}
			}
		}()
	}
	wg.Wait()
	var total uint64
	for _, n := range s.Counts() {
		total += n
	}
	if total != workers*each {
		t.Fatalf("counted %d, want %d", total, workers*each)
	}
	if st := s.Stats(); st.Entries != 100 || st.WriteErrors != 0 {
		t.Fatalf("Stats = %+v", st)
	}
	s.Close()
	// Every line on disk is a whole entry: writes did not interleave.
	for _, name := range []string{FileName, RotatedName} {
		f, err := os.Open(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			var w wire
			if err := json.Unmarshal(sc.Bytes(), &w); err != nil {
				t.Fatalf("%s: line %q: %v", name, sc.Text(), err)
			}
		}
		f.Close()
	}
}

func TestOptionsValidate(t *testing.T) {
	for _, o := range []Options{{MaxEntries: -1}, {MaxBytes: -1}, {MaxPayload: -1}, {MaxFileBytes: -1}} {
		if _, err := Open("", o); err == nil {
			t.Errorf("Open with %+v succeeded", o)
		}
	}
}

func TestEntryJSON(t *testing.T) {
	e := Entry{Time: t0, Topic: "zigbee2mqtt/th", Reason: payload.ReasonInvalidJSON, Detail: "d", Payload: []byte(`{"t":`), Size: 40}
	b, err := json.Marshal([]Entry{e})
	if err != nil {
		t.Fatal(err)
	}
	want := `[{"time":"2024-05-01T12:00:00Z","topic":"zigbee2mqtt/th","reason":"invalid_json","detail":"d","size":40,"payload":"{\"t\":"}]`
	if string(b) != want {
		t.Fatalf("JSON %s\nwant %s", b, want)
	}
	var back []Entry
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if len(back) != 1 || !back[0].Time.Equal(e.Time) || back[0].Topic != e.Topic || string(back[0].Payload) != string(e.Payload) || back[0].Size != 40 {
		t.Fatalf("round trip: %+v", back)
	}
}
