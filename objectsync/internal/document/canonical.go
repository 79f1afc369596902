package document

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"
	"unicode/utf8"
)

// isCanonical reports whether b is already the canonical encoding of the
// JSON value it holds, so that Object can take it as it is instead of
// decoding and encoding it (most writers send what they read, or what
// the Go client encodes, which is canonical). It checks without
// allocating: keys sorted and unique, no whitespace, every number as
// encoding/json writes a float64, every string escaped as it escapes
// one. A false is never wrong, only slow: the caller canonicalises.
func isCanonical(b []byte) bool {
	end, ok := canonicalValue(b, 0, 0)
	return ok && end == len(b)
}

// maxCanonicalDepth bounds the nesting isCanonical follows; deeper
// documents take the slow path (which has its own limit).
const maxCanonicalDepth = 256

// canonicalValue checks the value at b[i] and returns the index past it.
func canonicalValue(b []byte, i, depth int) (int, bool) {
	if i >= len(b) || depth > maxCanonicalDepth {
		return 0, false
	}
	switch c := b[i]; {
	case c == '{':
		return canonicalObject(b, i, depth)
	case c == '[':
		i++
		if i < len(b) && b[i] == ']' {
			return i + 1, true
		}
		for {
			e, ok := canonicalValue(b, i, depth+1)
			if !ok || e >= len(b) {
				return 0, false
			}
			switch b[e] {
			case ',':
				i = e + 1
			case ']':
				return e + 1, true
			default:
				return 0, false
			}
		}
	case c == '"':
		e := stringEnd(b, i)
		return e, e > 0 && canonicalString(b[i:e])
	case c == 't':
		return literal(b, i, "true")
	case c == 'f':
		return literal(b, i, "false")
	case c == 'n':
		return literal(b, i, "null")
	default:
		return canonicalNumber(b, i)
	}
}

func canonicalObject(b []byte, i, depth int) (int, bool) {
	i++
	if i < len(b) && b[i] == '}' {
		return i + 1, true
	}
	var prev []byte // the previous key, raw
	for {
		kEnd := stringEnd(b, i)
		if kEnd < 0 || kEnd >= len(b) || b[kEnd] != ':' || !canonicalString(b[i:kEnd]) {
			return 0, false
		}
		key := b[i:kEnd]
		if prev != nil {
			if c, ok := compareKeys(prev, key); !ok || c >= 0 {
				return 0, false
			}
		}
		prev = key
		e, ok := canonicalValue(b, kEnd+1, depth+1)
		if !ok || e >= len(b) {
			return 0, false
		}
		switch b[e] {
		case ',':
			i = e + 1
		case '}':
			return e + 1, true
		default:
			return 0, false
		}
	}
}

func literal(b []byte, i int, lit string) (int, bool) {
	if len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
		return 0, false
	}
	return i + len(lit), true
}

// canonicalString reports whether the raw JSON string s (quotes
// included) is as encoding/json writes the string it holds: valid UTF-8,
// U+2028 and U+2029 escaped, and escapes only where it escapes.
func canonicalString(s []byte) bool {
	body := s[1 : len(s)-1]
	if bytes.IndexByte(body, '\\') >= 0 {
		// Rare: compare with the encoder's own escaping.
		var v string
		if err := json.Unmarshal(s, &v); err != nil {
			return false
		}
		enc, err := Encode(v)
		return err == nil && bytes.Equal(enc, s)
	}
	for i := 0; i < len(body); {
		c := body[i]
		if c < utf8.RuneSelf {
			if c < 0x20 || c == '"' {
				return false
			}
			i++
			continue
		}
		r, size := utf8.DecodeRune(body[i:])
		if (r == utf8.RuneError && size == 1) || r == '\u2028' || r == '\u2029' {
			return false
		}
		i += size
	}
	return true
}

// canonicalNumber checks the number at b[i]: it must be what
// encoding/json writes for the float64 it reads as (the same cut-offs
// between plain and exponent notation, the same shortest digits).
func canonicalNumber(b []byte, i int) (int, bool) {
	e := i
	for e < len(b) && (b[e] == '-' || b[e] == '+' || b[e] == '.' || b[e] == 'e' || b[e] == 'E' || (b[e] >= '0' && b[e] <= '9')) {
		e++
	}
	if e == i {
		return 0, false
	}
	f, err := strconv.ParseFloat(string(b[i:e]), 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return 0, false
	}
	var buf [32]byte
	return e, bytes.Equal(appendFloat(buf[:0], f), b[i:e])
}

// appendFloat writes f as encoding/json does (ES6 number to string).
func appendFloat(b []byte, f float64) []byte {
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// e-09 is written e-9
		n := len(b)
		if n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}
