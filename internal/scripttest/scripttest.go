// Package scripttest is the harness of edged's script tests (in the manner
// of Prometheus' promqltest): the window scripts of package aggregate and the
// alert scripts of package alerts. A test package supplies the commands; the
// harness reads the scripts, checks their expect blocks, rewrites them with
// -update, and runs every script a second time with a checkpoint round trip
// between commands, which must print the same.
//
// A script is a text file of one command a line, its fields separated by
// white space. Blank lines and lines starting with # are skipped. A command
// that takes a block (expect, and those a test names) owns the indented
// lines right below it; an indented line anywhere else is an error.
//
//	read 1 d t 0s 20
//	tick 2 1m
//	expect
//	  window 10s 0s..10s d t n=1 …
//
// An expect block holds the lines printed since the previous expect
// command; output after the last one is an error, and -update records it in
// a final expect block. Times are offsets from T0 (Go durations) or RFC 3339
// times; ParseTime, FormatTime and FormatFloat read and print them the same
// way in every script.
package scripttest

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the expect blocks of the test scripts with the actual output")

// Line is one command of a script.
type Line struct {
	File   string   // the script's file name, for messages
	No     int      // 1-based line number
	Fields []string // the command and its arguments
	// Block holds, for a command that takes one, the indented lines below
	// it: for expect with surrounding white space trimmed, for the others
	// with the first two spaces of indentation removed (so YAML keeps its
	// nesting).
	Block []string
}

// Fatalf fails the test with a message that starts with the line's
// position.
func (l Line) Fatalf(t testing.TB, format string, args ...any) {
	t.Helper()
	t.Fatalf("%s:%d: %s", l.File, l.No, fmt.Sprintf(format, args...))
}

// Script is a parsed script.
type Script struct {
	File  string
	Lines []Line
	raw   []string // the file's lines, for Rewrite
}

func indented(l string) bool { return strings.HasPrefix(l, " ") || strings.HasPrefix(l, "\t") }

// Parse parses text, the content of file. The commands named in blocks take
// an indented block, as expect always does.
func Parse(file, text string, blocks ...string) (*Script, error) {
	s := &Script{File: file, raw: strings.Split(strings.TrimRight(text, "\n"), "\n")}
	blocks = append([]string{"expect"}, blocks...)
	for i := 0; i < len(s.raw); i++ {
		l := s.raw[i]
		if t := strings.TrimSpace(l); t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		if indented(l) {
			return nil, fmt.Errorf("%s:%d: indented line outside an %s block", file, i+1, strings.Join(blocks, " or "))
		}
		sl := Line{File: file, No: i + 1, Fields: strings.Fields(l)}
		if slices.Contains(blocks, sl.Fields[0]) {
			for i+1 < len(s.raw) && indented(s.raw[i+1]) {
				i++
				if sl.Fields[0] == "expect" {
					sl.Block = append(sl.Block, strings.TrimSpace(s.raw[i]))
				} else {
					sl.Block = append(sl.Block, strings.TrimPrefix(s.raw[i], "  "))
				}
			}
		}
		s.Lines = append(s.Lines, sl)
	}
	return s, nil
}

func (s *Script) expects() []Line {
	var e []Line
	for _, l := range s.Lines {
		if l.Fields[0] == "expect" {
			e = append(e, l)
		}
	}
	return e
}

// Check compares got, the output of a run (one block per expect command and
// one for what follows the last), with the expect blocks and returns a
// message for every difference.
func (s *Script) Check(got [][]string) []string {
	var msgs []string
	for i, l := range s.expects() {
		if !slices.Equal(l.Block, got[i]) {
			msgs = append(msgs, fmt.Sprintf("%s:%d: expect block differs (-want +got):\n%s", s.File, l.No, diff(l.Block, got[i])))
		}
	}
	if rest := got[len(got)-1]; len(rest) > 0 {
		msgs = append(msgs, fmt.Sprintf("%s: output after the last expect (run with -update to record it):\n    %s",
			s.File, strings.Join(rest, "\n    ")))
	}
	return msgs
}

// compareRuns returns a message for every block in which two runs' output
// differs.
func (s *Script) compareRuns(a, b [][]string, what string) []string {
	var msgs []string
	for i, l := range s.expects() {
		if !slices.Equal(a[i], b[i]) {
			msgs = append(msgs, fmt.Sprintf("%s:%d: expect: %s:\n%s", s.File, l.No, what, diff(a[i], b[i])))
		}
	}
	if last := len(a) - 1; !slices.Equal(a[last], b[last]) {
		msgs = append(msgs, fmt.Sprintf("%s: after the last expect: %s:\n%s", s.File, what, diff(a[last], b[last])))
	}
	return msgs
}

// Rewrite returns the script's text with every expect block holding got (as
// for Check), and a final expect block for output after the last one.
func (s *Script) Rewrite(got [][]string) []byte {
	var b strings.Builder
	next := 0 // the first raw line not yet written
	block := func(lines []string) {
		for _, l := range lines {
			b.WriteString("  " + l + "\n")
		}
	}
	for i, l := range s.expects() {
		for ; next < l.No; next++ { // through the expect line itself
			b.WriteString(s.raw[next] + "\n")
		}
		block(got[i])
		next += len(l.Block)
	}
	for ; next < len(s.raw); next++ {
		b.WriteString(s.raw[next] + "\n")
	}
	if rest := got[len(got)-1]; len(rest) > 0 {
		b.WriteString("expect\n")
		block(rest)
	}
	return []byte(b.String())
}

// diff renders a line diff of want and got, each line indented and marked
// "- " (only in want), "+ " (only in got) or "  " (in both).
func diff(want, got []string) string {
	// lcs[i][j] is the length of the longest common subsequence of
	// want[i:] and got[j:].
	lcs := make([][]int, len(want)+1)
	for i := range lcs {
		lcs[i] = make([]int, len(got)+1)
	}
	for i := len(want) - 1; i >= 0; i-- {
		for j := len(got) - 1; j >= 0; j-- {
			if want[i] == got[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var b strings.Builder
	for i, j := 0, 0; i < len(want) || j < len(got); {
		switch {
		case i < len(want) && j < len(got) && want[i] == got[j]:
			b.WriteString("      " + want[i] + "\n")
			i, j = i+1, j+1
		case i < len(want) && (j == len(got) || lcs[i+1][j] >= lcs[i][j+1]):
			b.WriteString("    - " + want[i] + "\n")
			i++
		default:
			b.WriteString("    + " + got[j] + "\n")
			j++
		}
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// Output collects what a run of a script prints, in blocks split at its
// expect commands.
type Output struct {
	shown, exact       [][]string // the finished blocks
	curShown, curExact []string
}

// Print records line as printed.
func (o *Output) Print(line string) { o.PrintAs(line, line) }

// PrintAs records line as printed, to be checked against the expect
// blocks, but exact as what the plain and the round-trip run must agree on.
// A script can so print a stable stand-in (#1) for a value that the expect
// blocks should not spell out (a generated id) while the round trip must
// still preserve it.
func (o *Output) PrintAs(line, exact string) {
	o.curShown = append(o.curShown, line)
	o.curExact = append(o.curExact, exact)
}

// Expect ends the block of output that the current expect command checks.
func (o *Output) Expect() {
	o.shown, o.exact = append(o.shown, o.curShown), append(o.exact, o.curExact)
	o.curShown, o.curExact = nil, nil
}

func (o *Output) blocks() (shown, exact [][]string) {
	return append(o.shown, o.curShown), append(o.exact, o.curExact)
}

// Func runs script s, printing to out and calling out.Expect for every
// expect command. With roundTrip it takes the state through a checkpoint
// between commands (see RoundTrip).
type Func func(t *testing.T, s *Script, roundTrip bool, out *Output)

// Run runs every script that matches pattern as a subtest of t, with run
// as the interpreter and blocks naming the commands that take an indented
// block (besides expect). Each script runs twice, without and with
// roundTrip, and both runs must print the same; then its expect blocks are
// checked or, with -update, rewritten.
func Run(t *testing.T, pattern string, run Func, blocks ...string) {
	t.Helper()
	files, err := filepath.Glob(pattern)
	if err != nil || len(files) == 0 {
		t.Fatalf("no scripts match %s: %v", pattern, err)
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), filepath.Ext(file)), func(t *testing.T) {
			text, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			s, err := Parse(file, string(text), blocks...)
			if err != nil {
				t.Fatal(err)
			}
			exec := func(roundTrip bool) (shown, exact [][]string) {
				var out Output
				run(t, s, roundTrip, &out)
				shown, exact = out.blocks()
				if n := len(s.expects()); len(shown) != n+1 {
					t.Fatalf("%s: the run split its output at %d expect commands, the script has %d", file, len(shown)-1, n)
				}
				return shown, exact
			}
			got, exact := exec(false)
			_, again := exec(true)
			for _, msg := range s.compareRuns(exact, again, "with a checkpoint round trip between commands the output differs (-plain +round trip)") {
				t.Error(msg)
			}
			if *update {
				if err := os.WriteFile(file, s.Rewrite(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			for _, msg := range s.Check(got) {
				t.Error(msg)
			}
		})
	}
}
