package api

import (
	"fmt"
	"unicode/utf16"
	"unicode/utf8"
)

// maxDepth bounds the nesting of skipped values (unknown fields).
const maxDepth = 1000

// kind is the JSON type of a scanned value.
type kind uint8

const (
	kindAbsent kind = iota
	kindNull
	kindString
	kindNumber
	kindBool
	kindObject
	kindArray
)

// rawValue is a scanned scalar: the decoded bytes of a string or the text of
// a number. Strings without escapes alias the input.
type rawValue struct {
	kind kind
	b    []byte
}

// syntaxError is malformed JSON at a byte offset of the scanned input.
type syntaxError struct {
	msg   string
	off   int
	field string // the known event field whose value was malformed, if any
}

func (e *syntaxError) Error() string { return fmt.Sprintf("%s at offset %d", e.msg, e.off) }

// errInvalidUTF8 is the message of a string that is not valid UTF-8.
const errInvalidUTF8 = "invalid UTF-8 in string"

// scanner is a small allocation-free JSON reader over one input; it checks
// the full grammar (RFC 8259) and that strings are valid UTF-8.
type scanner struct {
	data []byte
	pos  int
}

func (s *scanner) errf(off int, msg string) error { return &syntaxError{msg: msg, off: off} }

func (s *scanner) ws() {
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

func (s *scanner) eof() bool { return s.pos >= len(s.data) }

// peek returns the next byte, or 0 at the end.
func (s *scanner) peek() byte {
	if s.pos < len(s.data) {
		return s.data[s.pos]
	}
	return 0
}

// unexpected reports the byte at the current position.
func (s *scanner) unexpected(what string) error {
	if s.eof() {
		return s.errf(s.pos, "unexpected end of input, expected "+what)
	}
	return s.errf(s.pos, fmt.Sprintf("unexpected %q, expected %s", s.data[s.pos], what))
}

// scalar reads any value; objects and arrays are validated and skipped.
func (s *scanner) scalar() (rawValue, error) {
	switch c := s.peek(); {
	case c == '"':
		b, err := s.str()
		return rawValue{kind: kindString, b: b}, err
	case c == '-' || (c >= '0' && c <= '9'):
		b, err := s.number()
		return rawValue{kind: kindNumber, b: b}, err
	case c == '{':
		return rawValue{kind: kindObject}, s.skip(1)
	case c == '[':
		return rawValue{kind: kindArray}, s.skip(1)
	case c == 'n':
		return rawValue{kind: kindNull}, s.literal("null")
	case c == 't':
		return rawValue{kind: kindBool}, s.literal("true")
	case c == 'f':
		return rawValue{kind: kindBool}, s.literal("false")
	}
	return rawValue{}, s.unexpected("a value")
}

func (s *scanner) literal(lit string) error {
	if len(s.data)-s.pos < len(lit) || string(s.data[s.pos:s.pos+len(lit)]) != lit {
		return s.errf(s.pos, "invalid literal")
	}
	s.pos += len(lit)
	return nil
}

// skip validates and passes over one value at nesting depth.
func (s *scanner) skip(depth int) error {
	if depth > maxDepth {
		return s.errf(s.pos, "nesting too deep")
	}
	switch s.peek() {
	case '{':
		return s.skipObject(depth)
	case '[':
		return s.skipArray(depth)
	}
	_, err := s.scalar()
	return err
}

func (s *scanner) skipObject(depth int) error {
	s.pos++ // '{'
	s.ws()
	if s.peek() == '}' {
		s.pos++
		return nil
	}
	for {
		if s.peek() != '"' {
			return s.unexpected("a string key")
		}
		if _, err := s.str(); err != nil {
			return err
		}
		if err := s.colon(); err != nil {
			return err
		}
		if err := s.skip(depth + 1); err != nil {
			return err
		}
		end, err := s.next('}')
		if end || err != nil {
			return err
		}
	}
}

func (s *scanner) skipArray(depth int) error {
	s.pos++ // '['
	s.ws()
	if s.peek() == ']' {
		s.pos++
		return nil
	}
	for {
		if err := s.skip(depth + 1); err != nil {
			return err
		}
		end, err := s.next(']')
		if end || err != nil {
			return err
		}
	}
}

// colon consumes the ':' after a key and the whitespace around it.
func (s *scanner) colon() error {
	s.ws()
	if s.peek() != ':' {
		return s.unexpected("':'")
	}
	s.pos++
	s.ws()
	return nil
}

// next consumes the separator after a member: ',' (end false) or the closing
// byte (end true), and the whitespace around it.
func (s *scanner) next(closing byte) (end bool, err error) {
	s.ws()
	switch s.peek() {
	case ',':
		s.pos++
		s.ws()
		return false, nil
	case closing:
		s.pos++
		return true, nil
	}
	return false, s.unexpected("',' or '" + string(closing) + "'")
}

// number reads a number (RFC 8259 grammar) and returns its text.
func (s *scanner) number() ([]byte, error) {
	start := s.pos
	if s.peek() == '-' {
		s.pos++
	}
	switch c := s.peek(); {
	case c == '0':
		s.pos++
	case c >= '1' && c <= '9':
		s.digits()
	default:
		return nil, s.unexpected("a digit")
	}
	if s.peek() == '.' {
		s.pos++
		if !s.digits() {
			return nil, s.unexpected("a digit")
		}
	}
	if c := s.peek(); c == 'e' || c == 'E' {
		s.pos++
		if c := s.peek(); c == '+' || c == '-' {
			s.pos++
		}
		if !s.digits() {
			return nil, s.unexpected("a digit")
		}
	}
	return s.data[start:s.pos], nil
}

// digits consumes [0-9]* and reports whether there was at least one.
func (s *scanner) digits() bool {
	start := s.pos
	for s.pos < len(s.data) && s.data[s.pos] >= '0' && s.data[s.pos] <= '9' {
		s.pos++
	}
	return s.pos > start
}

// str reads a string starting at its opening quote and returns the decoded
// bytes; without escapes they alias the input.
func (s *scanner) str() ([]byte, error) {
	start := s.pos + 1
	for i := start; i < len(s.data); {
		c := s.data[i]
		switch {
		case c == '"':
			s.pos = i + 1
			return s.data[start:i], nil
		case c == '\\':
			return s.strEscaped(start, i)
		case c < 0x20:
			return nil, s.errf(i, "control character in string")
		case c < utf8.RuneSelf:
			i++
		default:
			r, size := utf8.DecodeRune(s.data[i:])
			if r == utf8.RuneError && size == 1 {
				return nil, s.errf(i, errInvalidUTF8)
			}
			i += size
		}
	}
	return nil, s.errf(len(s.data), "unterminated string")
}

// strEscaped decodes a string holding escapes into a new buffer; i is the
// first backslash. Lone surrogates become U+FFFD, as in encoding/json.
func (s *scanner) strEscaped(start, i int) ([]byte, error) {
	out := make([]byte, i-start, i-start+16)
	copy(out, s.data[start:i])
	for i < len(s.data) {
		c := s.data[i]
		switch {
		case c == '"':
			s.pos = i + 1
			return out, nil
		case c == '\\':
			var err error
			if out, i, err = s.escape(out, i); err != nil {
				return nil, err
			}
		case c < 0x20:
			return nil, s.errf(i, "control character in string")
		case c < utf8.RuneSelf:
			out = append(out, c)
			i++
		default:
			r, size := utf8.DecodeRune(s.data[i:])
			if r == utf8.RuneError && size == 1 {
				return nil, s.errf(i, errInvalidUTF8)
			}
			out = append(out, s.data[i:i+size]...)
			i += size
		}
	}
	return nil, s.errf(len(s.data), "unterminated string")
}

// escape decodes the escape sequence at data[i] == '\\', appending to out.
func (s *scanner) escape(out []byte, i int) ([]byte, int, error) {
	if i+1 >= len(s.data) {
		return nil, 0, s.errf(len(s.data), "unterminated string")
	}
	switch c := s.data[i+1]; c {
	case '"', '\\', '/':
		return append(out, c), i + 2, nil
	case 'b':
		return append(out, '\b'), i + 2, nil
	case 'f':
		return append(out, '\f'), i + 2, nil
	case 'n':
		return append(out, '\n'), i + 2, nil
	case 'r':
		return append(out, '\r'), i + 2, nil
	case 't':
		return append(out, '\t'), i + 2, nil
	case 'u':
		r := hex4(s.data[i:])
		if r < 0 {
			return nil, 0, s.errf(i, "invalid \\u escape")
		}
		i += 6
		if utf16.IsSurrogate(r) {
			if r2 := hex4(s.data[i:]); r2 >= 0 {
				if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
					return utf8.AppendRune(out, dec), i + 6, nil
				}
			}
			r = utf8.RuneError
		}
		return utf8.AppendRune(out, r), i, nil
	}
	return nil, 0, s.errf(i, "invalid escape")
}

// hex4 decodes `\uXXXX` at the start of b, or returns -1.
func hex4(b []byte) rune {
	if len(b) < 6 || b[0] != '\\' || b[1] != 'u' {
		return -1
	}
	var r rune
	for _, c := range b[2:6] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			c = c - 'A' + 10
		default:
			return -1
		}
		r = r<<4 | rune(c)
	}
	return r
}
