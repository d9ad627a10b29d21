package payload

import (
	"bytes"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// jsonIter walks a JSON document leaf by leaf without building it: next
// stops at every scalar and exposes its kind, its raw bytes and the path
// to it (the stack of enclosing containers). It validates the whole
// document as it goes (RFC 8259 grammar; strings are not checked for valid
// UTF-8, as encoding/json does not reject them either). It is several
// times faster than encoding/json's Decoder.Token and allocates nothing
// once its stack has grown. Keys and string values stay escaped until
// asked for (unescape), since most of them are only compared or skipped.
type jsonIter struct {
	b     []byte
	i     int
	stack []frame
	state uint8
	err   string
	errAt int

	// The current leaf.
	kind jsonKind
	raw  []byte // number text, or string contents without the quotes
	esc  bool   // raw is a string holding backslash escapes
}

type jsonKind uint8

const (
	jNumber jsonKind = iota + 1
	jString
	jTrue
	jFalse
	jNull
)

func (k jsonKind) String() string {
	return [...]string{"?", "number", "string", "true", "false", "null"}[k]
}

// frame is an open container: an object (idx < 0) with the key of its
// current member, or an array with the index of its current element.
type frame struct {
	key []byte
	esc bool
	idx int
}

const (
	stValue uint8 = iota // a value is expected
	stAfter              // a value just ended
	stDone
)

// maxDepth bounds nesting; sensor payloads are shallow.
const maxDepth = 64

func (it *jsonIter) reset(b []byte) {
	*it = jsonIter{b: b, stack: it.stack[:0]}
}

func (it *jsonIter) fail(msg string) bool {
	if it.err == "" {
		it.err, it.errAt = msg, it.i
	}
	it.state = stDone
	return false
}

// errDetail describes the syntax error for an *Error.
func (it *jsonIter) errDetail() string {
	return it.err + " at byte " + strconv.Itoa(it.errAt)
}

func (it *jsonIter) skipWS() {
	for it.i < len(it.b) && isSpace(it.b[it.i]) {
		it.i++
	}
}

// depth is the number of containers around the current leaf.
func (it *jsonIter) depth() int { return len(it.stack) }

// next advances to the next scalar leaf. It returns false at the end of
// the document or at a syntax error (it.err != "").
func (it *jsonIter) next() bool {
	for {
		switch it.state {
		case stValue:
			it.skipWS()
			if it.i >= len(it.b) {
				return it.fail("unexpected end of input")
			}
			switch c := it.b[it.i]; c {
			case '{':
				if len(it.stack) >= maxDepth {
					return it.fail("nesting deeper than " + strconv.Itoa(maxDepth))
				}
				it.i++
				it.stack = append(it.stack, frame{idx: -1})
				it.skipWS()
				if it.i < len(it.b) && it.b[it.i] == '}' {
					it.i++
					it.stack = it.stack[:len(it.stack)-1]
					it.state = stAfter
					continue
				}
				if !it.key() {
					return false
				}
			case '[':
				if len(it.stack) >= maxDepth {
					return it.fail("nesting deeper than " + strconv.Itoa(maxDepth))
				}
				it.i++
				it.stack = append(it.stack, frame{idx: 0})
				it.skipWS()
				if it.i < len(it.b) && it.b[it.i] == ']' {
					it.i++
					it.stack = it.stack[:len(it.stack)-1]
					it.state = stAfter
				}
			case '"':
				raw, esc, ok := it.str()
				if !ok {
					return false
				}
				it.kind, it.raw, it.esc, it.state = jString, raw, esc, stAfter
				return true
			case 't':
				return it.literal("true", jTrue)
			case 'f':
				return it.literal("false", jFalse)
			case 'n':
				return it.literal("null", jNull)
			default:
				if c != '-' && (c < '0' || c > '9') {
					return it.fail("unexpected " + strconv.QuoteRune(rune(c)))
				}
				return it.number()
			}
		case stAfter:
			it.skipWS()
			if len(it.stack) == 0 {
				if it.i != len(it.b) {
					return it.fail("data after the JSON value")
				}
				it.state = stDone
				return false
			}
			if it.i >= len(it.b) {
				return it.fail("unexpected end of input")
			}
			top := &it.stack[len(it.stack)-1]
			c := it.b[it.i]
			switch {
			case c == ',':
				it.i++
				if top.idx < 0 {
					it.skipWS()
					if !it.key() {
						return false
					}
				} else {
					top.idx++
				}
				it.state = stValue
			case c == '}' && top.idx < 0, c == ']' && top.idx >= 0:
				it.i++
				it.stack = it.stack[:len(it.stack)-1]
			default:
				return it.fail("unexpected " + strconv.QuoteRune(rune(c)) + " after a value")
			}
		default:
			return false
		}
	}
}

// key reads `"key" :` into the top frame.
func (it *jsonIter) key() bool {
	if it.i >= len(it.b) || it.b[it.i] != '"' {
		return it.fail("want a quoted object key")
	}
	raw, esc, ok := it.str()
	if !ok {
		return false
	}
	it.skipWS()
	if it.i >= len(it.b) || it.b[it.i] != ':' {
		return it.fail("want ':' after an object key")
	}
	it.i++
	top := &it.stack[len(it.stack)-1]
	top.key, top.esc = raw, esc
	it.state = stValue
	return true
}

// str reads a string starting at the opening quote.
func (it *jsonIter) str() (raw []byte, esc, ok bool) {
	start := it.i + 1
	for i := start; i < len(it.b); i++ {
		switch c := it.b[i]; {
		case c == '"':
			it.i = i + 1
			return it.b[start:i], esc, true
		case c == '\\':
			esc = true
			i++
			if i >= len(it.b) {
				break
			}
			switch it.b[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if i+4 >= len(it.b) || !isHex4(it.b[i+1:i+5]) {
					it.i = i
					return nil, false, it.fail(`bad \u escape in a string`)
				}
				i += 4
			default:
				it.i = i
				return nil, false, it.fail("bad escape in a string")
			}
		case c < 0x20:
			it.i = i
			return nil, false, it.fail("control character in a string")
		}
	}
	it.i = len(it.b)
	return nil, false, it.fail("unterminated string")
}

func isHex4(b []byte) bool {
	for _, c := range b {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

func (it *jsonIter) literal(word string, k jsonKind) bool {
	if !bytes.HasPrefix(it.b[it.i:], []byte(word)) {
		return it.fail("invalid literal")
	}
	it.raw = it.b[it.i : it.i+len(word)]
	it.i += len(word)
	it.kind, it.esc, it.state = k, false, stAfter
	return true
}

// number reads a JSON number: -?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?
func (it *jsonIter) number() bool {
	b, start := it.b, it.i
	i := start
	if b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && '1' <= b[i] && b[i] <= '9':
		for i < len(b) && '0' <= b[i] && b[i] <= '9' {
			i++
		}
	default:
		it.i = i
		return it.fail("invalid number")
	}
	if i < len(b) && b[i] == '.' {
		i++
		d := i
		for i < len(b) && '0' <= b[i] && b[i] <= '9' {
			i++
		}
		if i == d {
			it.i = i
			return it.fail("invalid number")
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		d := i
		for i < len(b) && '0' <= b[i] && b[i] <= '9' {
			i++
		}
		if i == d {
			it.i = i
			return it.fail("invalid number")
		}
	}
	it.raw, it.i = b[start:i], i
	it.kind, it.esc, it.state = jNumber, false, stAfter
	return true
}

// unescape appends the decoded form of a validated JSON string body.
// Unpaired surrogates become U+FFFD, as in encoding/json.
func unescape(dst, raw []byte) []byte {
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if c != '\\' || i+1 >= len(raw) {
			dst = append(dst, c)
			continue
		}
		i++
		switch raw[i] {
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			if i+4 >= len(raw) {
				return append(dst, "\uFFFD"...)
			}
			r := hex4(raw[i+1 : i+5])
			i += 4
			if utf16.IsSurrogate(r) {
				r2 := rune(-1)
				if i+6 < len(raw) && raw[i+1] == '\\' && raw[i+2] == 'u' {
					r2 = hex4(raw[i+3 : i+7])
				}
				if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
					r = dec
					i += 6
				} else {
					r = utf8.RuneError
				}
			}
			dst = utf8.AppendRune(dst, r)
		default: // '"', '\\', '/'
			dst = append(dst, raw[i])
		}
	}
	return dst
}

func hex4(b []byte) rune {
	var r rune
	for _, c := range b {
		r <<= 4
		switch {
		case '0' <= c && c <= '9':
			r |= rune(c - '0')
		case 'a' <= c && c <= 'f':
			r |= rune(c - 'a' + 10)
		case 'A' <= c && c <= 'F':
			r |= rune(c - 'A' + 10)
		}
	}
	return r
}

// keyIs reports whether frame f's key equals want; scratch holds the
// unescaped key when it has escapes.
func keyIs(f *frame, want string, scratch *[]byte) bool {
	if !f.esc {
		return string(f.key) == want
	}
	*scratch = unescape((*scratch)[:0], f.key)
	return string(*scratch) == want
}

// appendKey appends frame f's key, unescaped, or its array index.
func appendKey(dst []byte, f *frame) []byte {
	if f.idx >= 0 {
		return strconv.AppendInt(dst, int64(f.idx), 10)
	}
	if f.esc {
		return unescape(dst, f.key)
	}
	return append(dst, f.key...)
}

// appendPath appends the path of frames fs as segments joined by "/".
func appendPath(dst []byte, fs []frame) []byte {
	for i := range fs {
		if i > 0 {
			dst = append(dst, '/')
		}
		dst = appendKey(dst, &fs[i])
	}
	return dst
}
