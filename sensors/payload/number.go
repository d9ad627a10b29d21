package payload

import (
	"bytes"
	"math"
	"strconv"
)

// isSpace reports ASCII white space.
func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

func trimSpace(b []byte) []byte {
	for len(b) > 0 && isSpace(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isSpace(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

// isDecimal reports whether b is a plain decimal number:
//
//	[+-]? ( digits [. digits?] | . digits ) ( [eE] [+-]? digits )?
//
// It excludes what strconv.ParseFloat also accepts but a sensor never
// means: hexadecimal, underscores, "inf", "nan".
func isDecimal(b []byte) bool {
	i := 0
	if i < len(b) && (b[i] == '+' || b[i] == '-') {
		i++
	}
	digits := 0
	for i < len(b) && '0' <= b[i] && b[i] <= '9' {
		i++
		digits++
	}
	if i < len(b) && b[i] == '.' {
		i++
		for i < len(b) && '0' <= b[i] && b[i] <= '9' {
			i++
			digits++
		}
	}
	if digits == 0 {
		return false
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		exp := 0
		for i < len(b) && '0' <= b[i] && b[i] <= '9' {
			i++
			exp++
		}
		if exp == 0 {
			return false
		}
	}
	return i == len(b)
}

var nonFiniteWords = [][]byte{
	[]byte("nan"), []byte("inf"), []byte("infinity"),
}

// isNonFiniteWord reports NaN/Inf spellings, which get their own reason.
func isNonFiniteWord(b []byte) bool {
	if len(b) > 0 && (b[0] == '+' || b[0] == '-') {
		b = b[1:]
	}
	for _, w := range nonFiniteWords {
		if bytes.EqualFold(b, w) {
			return true
		}
	}
	return false
}

// parseDecimal parses a decimal number (see isDecimal) that must be finite.
// On failure it returns the reason and a detail for the error.
func parseDecimal(b []byte) (float64, Reason, string) {
	if !isDecimal(b) {
		if isNonFiniteWord(b) {
			return 0, ReasonNonFinite, quote(b) + " is not a finite number"
		}
		return 0, ReasonNotANumber, quote(b) + " is not a number"
	}
	// strconv clones its input for errors, so this conversion does not
	// allocate.
	v, err := strconv.ParseFloat(string(b), 64)
	if err != nil || math.IsInf(v, 0) || math.IsNaN(v) {
		if math.IsInf(v, 0) {
			return 0, ReasonNonFinite, quote(b) + " is outside the float64 range"
		}
		return 0, ReasonNotANumber, quote(b) + " is not a number"
	}
	return v, "", ""
}

// parseTextNumber parses a payload or string that holds one number,
// surrounding white space allowed.
func parseTextNumber(b []byte) (float64, Reason, string) {
	b = trimSpace(b)
	if len(b) == 0 {
		return 0, ReasonEmpty, "no number"
	}
	return parseDecimal(b)
}

// parseBool recognises the boolean spellings devices use.
func parseBool(b []byte) (v float64, ok bool) {
	switch string(b) {
	case "true", "True", "TRUE", "on", "On", "ON":
		return 1, true
	case "false", "False", "FALSE", "off", "Off", "OFF":
		return 0, true
	}
	return 0, false
}
