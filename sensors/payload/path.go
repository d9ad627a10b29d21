package payload

import (
	"errors"
	"strconv"
	"strings"
)

// step is one element of a field path: an object key, or an array index
// when idx >= 0.
type step struct {
	key string
	idx int
}

// maxSteps bounds the length of a field path.
const maxSteps = 32

// parsePath parses a field path: object keys separated by dots, array
// indexes in brackets, and keys that hold dots or brackets quoted in
// brackets — `a.b[0].c`, `[2].v`, `sensors["temp.1"]`.
func parsePath(s string) ([]step, error) {
	if s == "" {
		return nil, errors.New("empty path")
	}
	var steps []step
	rest := s
	first := true
	for rest != "" {
		switch {
		case rest[0] == '[':
			end := strings.IndexByte(rest, ']')
			if strings.HasPrefix(rest, `["`) {
				q := strings.Index(rest[2:], `"]`)
				if q < 0 {
					return nil, errors.New(`unclosed ["…"] in path ` + strconv.Quote(s))
				}
				key := rest[2 : 2+q]
				if key == "" {
					return nil, errors.New("empty key in path " + strconv.Quote(s))
				}
				steps = append(steps, step{key: key, idx: -1})
				rest = rest[2+q+2:]
				break
			}
			if end < 0 {
				return nil, errors.New("unclosed '[' in path " + strconv.Quote(s))
			}
			n, err := strconv.Atoi(rest[1:end])
			if err != nil || n < 0 || rest[1] == '+' {
				return nil, errors.New("bad index " + strconv.Quote(rest[:end+1]) + " in path " + strconv.Quote(s) + " (want [0], [1], …)")
			}
			steps = append(steps, step{idx: n})
			rest = rest[end+1:]
		default:
			if !first {
				if rest[0] != '.' {
					return nil, errors.New("want '.' or '[' after ']' in path " + strconv.Quote(s))
				}
				rest = rest[1:]
			}
			end := strings.IndexAny(rest, ".[]")
			if end < 0 {
				end = len(rest)
			}
			if end == 0 || (end < len(rest) && rest[end] == ']') {
				return nil, errors.New("empty or malformed key in path " + strconv.Quote(s))
			}
			steps = append(steps, step{key: rest[:end], idx: -1})
			rest = rest[end:]
		}
		first = false
		if len(steps) > maxSteps {
			return nil, errors.New("path " + strconv.Quote(s) + " is deeper than " + strconv.Itoa(maxSteps))
		}
	}
	return steps, nil
}

// pathName is the default name of a path's value: its steps joined by "/".
func pathName(steps []step) string {
	var b strings.Builder
	for i, st := range steps {
		if i > 0 {
			b.WriteByte('/')
		}
		if st.idx >= 0 {
			b.WriteString(strconv.Itoa(st.idx))
		} else {
			b.WriteString(st.key)
		}
	}
	return b.String()
}

// matches reports whether the iterator's current leaf is at path steps.
func (it *jsonIter) matches(steps []step, scratch *[]byte) bool {
	if len(it.stack) != len(steps) {
		return false
	}
	for i := range steps {
		f := &it.stack[i]
		if steps[i].idx >= 0 {
			if f.idx != steps[i].idx {
				return false
			}
		} else if f.idx >= 0 || !keyIs(f, steps[i].key, scratch) {
			return false
		}
	}
	return true
}
