package scripttest

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/edged-io/edged"
)

const sample = `# a comment
rules
  - name: hot
    above: 1
say a

say b
expect
  a
	b
say c
expect
`

func parseSample(t *testing.T) *Script {
	t.Helper()
	s, err := Parse("x.txt", sample, "rules")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestParse(t *testing.T) {
	s := parseSample(t)
	want := []Line{
		{File: "x.txt", No: 2, Fields: []string{"rules"}, Block: []string{"- name: hot", "  above: 1"}},
		{File: "x.txt", No: 5, Fields: []string{"say", "a"}},
		{File: "x.txt", No: 7, Fields: []string{"say", "b"}},
		{File: "x.txt", No: 8, Fields: []string{"expect"}, Block: []string{"a", "b"}},
		{File: "x.txt", No: 11, Fields: []string{"say", "c"}},
		{File: "x.txt", No: 12, Fields: []string{"expect"}},
	}
	if !slices.EqualFunc(s.Lines, want, func(a, b Line) bool {
		return a.File == b.File && a.No == b.No && slices.Equal(a.Fields, b.Fields) && slices.Equal(a.Block, b.Block)
	}) {
		t.Errorf("Parse:\n got %+v\nwant %+v", s.Lines, want)
	}

	// Without "rules" taking a block, its YAML is an indented line outside one.
	if _, err := Parse("x.txt", sample); err == nil || !strings.Contains(err.Error(), "x.txt:3: indented line outside an expect block") {
		t.Errorf("Parse without the rules block: %v", err)
	}
	if _, err := Parse("x.txt", "say a\n\n  b\n", "rules"); err == nil || !strings.Contains(err.Error(), "x.txt:3:") ||
		!strings.Contains(err.Error(), "an expect or rules block") {
		t.Errorf("Parse of a block after a blank line: %v", err)
	}
}

func TestCheck(t *testing.T) {
	s := parseSample(t)
	if msgs := s.Check([][]string{{"a", "b"}, nil, nil}); len(msgs) != 0 {
		t.Errorf("Check of the expected output: %q", msgs)
	}
	msgs := s.Check([][]string{{"a", "B", "c"}, {"c"}, {"d"}})
	want := []string{
		"x.txt:8: expect block differs (-want +got):\n      a\n    - b\n    + B\n    + c",
		"x.txt:12: expect block differs (-want +got):\n    + c",
		"x.txt: output after the last expect (run with -update to record it):\n    d",
	}
	if !slices.Equal(msgs, want) {
		t.Errorf("Check:\n got %q\nwant %q", msgs, want)
	}
}

func TestCompareRuns(t *testing.T) {
	s := parseSample(t)
	a := [][]string{{"a"}, {"c"}, {"z"}}
	if msgs := s.compareRuns(a, a, "differs"); len(msgs) != 0 {
		t.Errorf("compareRuns of equal runs: %q", msgs)
	}
	msgs := s.compareRuns(a, [][]string{{"a"}, {"c2"}, nil}, "differs")
	want := []string{
		"x.txt:12: expect: differs:\n    - c\n    + c2",
		"x.txt: after the last expect: differs:\n    - z",
	}
	if !slices.Equal(msgs, want) {
		t.Errorf("compareRuns:\n got %q\nwant %q", msgs, want)
	}
}

func TestRewrite(t *testing.T) {
	s := parseSample(t)
	got := [][]string{{"b"}, {"c", "c2"}, {"d"}}
	text := string(s.Rewrite(got))
	want := `# a comment
rules
  - name: hot
    above: 1
say a

say b
expect
  b
say c
expect
  c
  c2
expect
  d
`
	if text != want {
		t.Errorf("Rewrite:\n%s\nwant:\n%s", text, want)
	}
	// The rewritten script expects what it was rewritten with.
	s2, err := Parse("x.txt", text, "rules")
	if err != nil {
		t.Fatal(err)
	}
	if msgs := s2.Check([][]string{{"b"}, {"c", "c2"}, {"d"}, nil}); len(msgs) != 0 {
		t.Errorf("Check of the rewritten script: %q", msgs)
	}
	// Rewriting with the output a script expects gives it back unchanged.
	if again := string(s2.Rewrite([][]string{{"b"}, {"c", "c2"}, {"d"}, nil})); again != text {
		t.Errorf("Rewrite is not stable:\n%s\nwant:\n%s", again, text)
	}
}

func TestDiff(t *testing.T) {
	for _, c := range []struct {
		want, got []string
		diff      string
	}{
		{nil, nil, ""},
		{[]string{"a"}, []string{"a"}, "      a"},
		{[]string{"a", "b", "c"}, []string{"a", "c", "d"}, "      a\n    - b\n      c\n    + d"},
		{[]string{"x"}, []string{"y"}, "    - x\n    + y"},
	} {
		if d := diff(c.want, c.got); d != c.diff {
			t.Errorf("diff(%q, %q) =\n%s\nwant\n%s", c.want, c.got, d, c.diff)
		}
	}
}

func TestTimes(t *testing.T) {
	if want := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano(); T0 != want {
		t.Fatalf("T0 = %d, want %d", T0, want)
	}
	for _, c := range []struct {
		in   string
		ns   int64
		back string
	}{
		{"0s", T0, "0s"},
		{"-3s", T0 - 3e9, "-3s"},
		{"1h0m5s", T0 + int64(time.Hour+5*time.Second), "1h0m5s"},
		{"2026-01-01T00:00:12Z", T0 + 12e9, "12s"},
		{"1970-01-01T00:00:01.5Z", 1.5e9, "1970-01-01T00:00:01.5Z"},
	} {
		ns, err := ParseTime(c.in)
		if err != nil || ns != c.ns {
			t.Errorf("ParseTime(%q) = %d, %v; want %d", c.in, ns, err, c.ns)
		}
		if s := FormatTime(ns); s != c.back {
			t.Errorf("FormatTime(%d) = %q, want %q", ns, s, c.back)
		}
	}
	if _, err := ParseTime("soon"); err == nil {
		t.Error("ParseTime(soon) did not fail")
	}
	for f, want := range map[float64]string{1e21: "1e+21", -0.25: "-0.25", 1.0 / 3: "0.3333333333333333"} {
		if s := FormatFloat(f); s != want {
			t.Errorf("FormatFloat(%v) = %s, want %s", f, s, want)
		}
	}
}

func TestParseReading(t *testing.T) {
	r, err := ParseReading(strings.Fields("read 7 d t 2s -1.5 unit=C ingest=3s flags=unsynced,fromingest"))
	want := edged.Reading{LSN: 7, Device: "d", Series: "t", Unit: "C", Value: -1.5, Time: T0 + 2e9, Ingest: T0 + 3e9,
		Flags: edged.ClockUnsynced | edged.TimeFromIngest}
	if err != nil || r != want {
		t.Errorf("ParseReading = %+v, %v; want %+v", r, err, want)
	}
	if r, err := ParseReading(strings.Fields("read 1 d t 2s 4")); err != nil || r.Ingest != r.Time {
		t.Errorf("ParseReading without ingest = %+v, %v", r, err)
	}
	for _, bad := range []string{"read 1 d t 2s", "read x d t 2s 1", "read 1 d t soon 1", "read 1 d t 2s one",
		"read 1 d t 2s 1 flags=odd", "read 1 d t 2s 1 color=red", "read 1 d t 2s 1 ingest=soon"} {
		if _, err := ParseReading(strings.Fields(bad)); err == nil {
			t.Errorf("ParseReading(%q) did not fail", bad)
		}
	}

	lsn, now, err := ParseTick(strings.Fields("tick 9 1m"))
	if err != nil || lsn != 9 || now != T0+int64(time.Minute) {
		t.Errorf("ParseTick = %d, %d, %v", lsn, now, err)
	}
	for _, bad := range []string{"tick", "tick 1", "tick x 1m", "tick 1 soon", "tick 1 1m 2"} {
		if _, _, err := ParseTick(strings.Fields(bad)); err == nil {
			t.Errorf("ParseTick(%q) did not fail", bad)
		}
	}
}

// counter is a Checkpointer; with drift it restores itself one off.
type counter struct {
	n     byte
	drift bool
	fail  error
}

func (c *counter) MarshalBinary() ([]byte, error) { return []byte{c.n}, nil }

func (c *counter) UnmarshalBinary(b []byte) error {
	if c.fail != nil {
		return c.fail
	}
	c.n = b[0]
	if c.drift {
		c.n++
	}
	return nil
}

func TestRoundTrip(t *testing.T) {
	n, err := RoundTrip(&counter{n: 5}, func() (*counter, error) { return &counter{}, nil })
	if err != nil || n.n != 5 {
		t.Errorf("RoundTrip = %+v, %v", n, err)
	}
	if _, err := RoundTrip(&counter{n: 5}, func() (*counter, error) { return &counter{drift: true}, nil }); err == nil {
		t.Error("RoundTrip of a state that does not restore itself did not fail")
	}
	bad := errors.New("corrupt")
	if _, err := RoundTrip(&counter{n: 5}, func() (*counter, error) { return &counter{fail: bad}, nil }); !errors.Is(err, bad) {
		t.Errorf("RoundTrip with a failing restore = %v", err)
	}
}

// TestRun runs a script of "say WORD" commands, which print WORD, through
// the whole harness. Its expectations hold, so it passes and, with -update,
// is rewritten unchanged.
func TestRun(t *testing.T) {
	file := filepath.Join(t.TempDir(), "say.txt")
	const text = "say a\nsay b\nexpect\n  a\n  b\nsay c\nexpect\n  c\n"
	if err := os.WriteFile(file, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	var runs []bool
	Run(t, filepath.Join(filepath.Dir(file), "*.txt"), func(t *testing.T, s *Script, roundTrip bool, out *Output) {
		runs = append(runs, roundTrip)
		for _, l := range s.Lines {
			switch l.Fields[0] {
			case "say":
				out.PrintAs(l.Fields[1], l.Fields[1]+"!")
			case "expect":
				out.Expect()
			default:
				l.Fatalf(t, "unknown command %q", l.Fields[0])
			}
		}
	})
	if !slices.Equal(runs, []bool{false, true}) {
		t.Errorf("runs (roundTrip) = %v, want [false true]", runs)
	}
	if b, err := os.ReadFile(file); err != nil || string(b) != text {
		t.Errorf("the script changed: %q, %v", b, err)
	}
}
