package payload

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/edged-io/edged"
)

// A template renders a series name; see the package doc for the syntax.
type template struct {
	src   string
	parts []part
	// constant is set when the template has no placeholder.
	constant string
	isConst  bool
	// topicOnly is set for "{topic}": the name is the topic itself.
	topicOnly bool
}

type partKind uint8

const (
	pLiteral partKind = iota
	pTopic
	pSegment
	pDevice
	pField
	pMeasurement
	pTags
	pTag
)

type part struct {
	kind partKind
	text string // literal text, or the tag key of pTag
	n    int    // topic segment: 1-based, negative counts from the end
}

// parseTemplate compiles s. line says whether the line-protocol
// placeholders are allowed; field whether {field} is.
func parseTemplate(s string, field, line bool) (template, error) {
	t := template{src: s}
	rest := s
	for rest != "" {
		open := strings.IndexAny(rest, "{}")
		if open < 0 {
			t.parts = append(t.parts, part{kind: pLiteral, text: rest})
			break
		}
		if rest[open] == '}' {
			return t, errors.New("unmatched '}'")
		}
		if open > 0 {
			t.parts = append(t.parts, part{kind: pLiteral, text: rest[:open]})
		}
		end := strings.IndexByte(rest[open:], '}')
		if end < 0 {
			return t, errors.New("unclosed '{'")
		}
		name := rest[open+1 : open+end]
		rest = rest[open+end+1:]
		p, err := parsePlaceholder(name, field, line)
		if err != nil {
			return t, err
		}
		t.parts = append(t.parts, p)
	}
	switch {
	case len(t.parts) == 0:
		return t, errors.New("empty series template")
	case len(t.parts) == 1 && t.parts[0].kind == pLiteral:
		t.isConst, t.constant = true, t.parts[0].text
		if msg := badName(t.constant); msg != "" {
			return t, errors.New(msg)
		}
	case len(t.parts) == 1 && t.parts[0].kind == pTopic:
		t.topicOnly = true
	}
	return t, nil
}

func parsePlaceholder(name string, field, line bool) (part, error) {
	switch name {
	case "topic":
		return part{kind: pTopic}, nil
	case "device":
		return part{kind: pDevice}, nil
	case "field":
		if !field {
			return part{}, errors.New("{field} is not available for this format")
		}
		return part{kind: pField}, nil
	case "measurement", "tags":
		if !line {
			return part{}, fmt.Errorf("{%s} is only available for format line", name)
		}
		if name == "tags" {
			return part{kind: pTags}, nil
		}
		return part{kind: pMeasurement}, nil
	}
	if key, ok := strings.CutPrefix(name, "tag:"); ok {
		if !line {
			return part{}, fmt.Errorf("{%s} is only available for format line", name)
		}
		if key == "" {
			return part{}, errors.New("{tag:} needs a tag key")
		}
		return part{kind: pTag, text: key}, nil
	}
	n, err := strconv.Atoi(name)
	if err != nil || n == 0 || n > 64 || n < -64 {
		return part{}, fmt.Errorf("unknown placeholder {%s} (want topic, device, field, N or -N for the N-th topic segment from 1, or from the end)", name)
	}
	return part{kind: pSegment, n: n}, nil
}

// has reports whether the template has a placeholder of kind k.
func (t *template) has(k partKind) bool {
	for _, p := range t.parts {
		if p.kind == k {
			return true
		}
	}
	return false
}

// segment returns the n-th '/'-separated segment of topic (1-based;
// negative counts from the end).
func segment(topic string, n int) (string, bool) {
	if n < 0 {
		count := strings.Count(topic, "/") + 1
		n = count + n + 1
		if n < 1 {
			return "", false
		}
	}
	for i := 1; ; i++ {
		j := strings.IndexByte(topic, '/')
		if i == n {
			if j < 0 {
				return topic, true
			}
			return topic[:j], true
		}
		if j < 0 {
			return "", false
		}
		topic = topic[j+1:]
	}
}

// nameEnv is what placeholders render from.
type nameEnv struct {
	topic  string
	device string
	field  []byte
	line   *lineParts // line protocol only
}

// render appends the name to dst; on a missing topic segment or tag it
// returns the reason and a detail.
func (t *template) render(dst []byte, env *nameEnv) ([]byte, Reason, string) {
	for _, p := range t.parts {
		switch p.kind {
		case pLiteral:
			dst = append(dst, p.text...)
		case pTopic:
			dst = append(dst, env.topic...)
		case pSegment:
			s, ok := segment(env.topic, p.n)
			if !ok {
				return dst, ReasonBadTopic, fmt.Sprintf("series template %q needs topic segment {%d}", t.src, p.n)
			}
			dst = append(dst, s...)
		case pDevice:
			dst = append(dst, env.device...)
		case pField:
			dst = append(dst, env.field...)
		case pMeasurement:
			dst = env.line.appendMeasurement(dst)
		case pTags:
			dst = env.line.appendTags(dst)
		case pTag:
			var ok bool
			if dst, ok = env.line.appendTag(dst, p.text); !ok {
				return dst, ReasonMissingField, fmt.Sprintf("series template %q needs tag %q", t.src, p.text)
			}
		}
	}
	return dst, "", ""
}

// badName says what is wrong with a series name, or "" if nothing.
func badName(s string) string {
	if len(s) == 0 {
		return "empty series name"
	}
	if len(s) > edged.MaxStringLen {
		return fmt.Sprintf("series name of %d bytes (limit %d)", len(s), edged.MaxStringLen)
	}
	if !utf8.ValidString(s) {
		return "series name " + quote([]byte(s)) + " is not UTF-8"
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f {
			return "series name " + quote([]byte(s)) + " has a control character"
		}
	}
	return ""
}

// names interns series names so that steady-state decoding allocates
// nothing: a name is built in a scratch buffer and looked up. The map is
// bounded; when full it starts over (a flood of distinct topics costs
// allocations, not memory).
type names struct {
	mu sync.Mutex
	m  map[string]string
}

const maxNames = 4096

// intern returns b as a validated string.
func (n *names) intern(b []byte) (string, string) {
	n.mu.Lock()
	s, ok := n.m[string(b)]
	n.mu.Unlock()
	if ok {
		return s, ""
	}
	s = string(b)
	if msg := badName(s); msg != "" {
		return "", msg
	}
	n.mu.Lock()
	if n.m == nil || len(n.m) >= maxNames {
		n.m = make(map[string]string)
	}
	n.m[s] = s
	n.mu.Unlock()
	return s, ""
}

// seriesName renders the series of one value. buf is scratch space.
func (d *base) seriesName(buf *[]byte, env *nameEnv) (string, Reason, string) {
	t := &d.series
	switch {
	case t.isConst:
		return t.constant, "", ""
	case t.topicOnly:
		if msg := badName(env.topic); msg != "" {
			return "", ReasonBadName, msg
		}
		return env.topic, "", ""
	}
	b, r, msg := t.render((*buf)[:0], env)
	*buf = b
	if r != "" {
		return "", r, msg
	}
	s, msg := d.names.intern(b)
	if msg != "" {
		return "", ReasonBadName, msg
	}
	return s, "", ""
}
