package recorder

import (
	"strings"
	"unicode/utf8"

	"github.com/pathstats/pathstats"
)

// OtherPath is the bucket for paths refused by the cardinality guard.
const OtherPath = "/:other"

// Normalizer turns raw request paths into the paths statistics are kept under
// (DESIGN §4): query dropped, "//" collapsed, dot segments resolved, trailing
// slash dropped, identifier-like segments replaced by ":id", length capped.
// A route template's ":name" segments win over the default rules.
type Normalizer struct {
	// Disabled keeps paths as they are apart from dropping the query and
	// capping the length.
	Disabled bool
	// MaxLength caps the result in bytes (default pathstats.MaxPathLength).
	MaxLength int
}

// Template is a parsed route pattern: literal segments, ":name" segments
// (one segment each) and a final "*" (the rest).
type Template []string

// ParseTemplate splits a route pattern such as "/users/:id/*" into segments.
// A pattern without ":name" segments returns nil: it adds nothing to the
// default rules.
func ParseTemplate(pattern string) Template {
	if !strings.Contains(pattern, "/:") {
		return nil
	}
	segs := strings.Split(strings.Trim(pattern, "/"), "/")
	for i, s := range segs {
		if s != "*" && !isParam(s) {
			segs[i] = "" // literal: the default rules apply
		}
	}
	return Template(segs)
}

// isParam reports whether s is a ":name" segment with a name of letters,
// digits and underscores.
func isParam(s string) bool {
	if len(s) < 2 || s[0] != ':' {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// Normalize returns the normalised form of path.
func (n *Normalizer) Normalize(path string, tmpl Template) string {
	var buf [256]byte
	return string(n.Append(buf[:0], path, tmpl))
}

// Append appends the normalised form of path to dst; with a large enough
// dst it does not allocate. It makes one pass over the path.
func (n *Normalizer) Append(dst []byte, path string, tmpl Template) []byte {
	maxLen := n.MaxLength
	if maxLen <= 0 {
		maxLen = pathstats.MaxPathLength
	}
	start := len(dst)
	if n.Disabled {
		if i := strings.IndexAny(path, "?#"); i >= 0 {
			path = path[:i]
		}
		if path == "" || path[0] != '/' {
			dst = append(dst, '/')
		}
		dst = append(dst, path...)
		return capLength(dst, start, maxLen)
	}
	idx := 0
	for i := 0; i < len(path) && len(dst)-start <= maxLen; {
		c := path[i]
		if c == '/' {
			i++
			continue
		}
		if c == '?' || c == '#' {
			break
		}
		j, kinds := i, uint8(0)
		for ; j < len(path); j++ {
			k := charKind[path[j]]
			if k&kindEnd != 0 {
				break
			}
			kinds |= k
		}
		seg := path[i:j]
		i = j
		switch {
		case seg == ".":
			continue
		case seg == "..":
			dst = popSegment(dst, start)
			idx = max(idx-1, 0)
			continue
		}
		dst = append(dst, '/')
		dst = appendSegment(dst, seg, kinds, tmpl, idx)
		idx++
	}
	if len(dst) == start {
		dst = append(dst, '/')
	}
	return capLength(dst, start, maxLen)
}

// Character kinds for the one-pass segment classification.
const (
	kindDigit  = 1 << iota // 0-9
	kindHex                // a-f A-F
	kindLetter             // other ASCII letters
	kindDash               // - _
	kindHigh               // bytes >= 0x80
	kindOther              // anything else
	kindEnd                // / ? #: ends a segment
)

var charKind = func() (t [256]uint8) {
	for c := 0; c < 256; c++ {
		switch {
		case c >= '0' && c <= '9':
			t[c] = kindDigit
		case c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F':
			t[c] = kindHex
		case c >= 'g' && c <= 'z' || c >= 'G' && c <= 'Z':
			t[c] = kindLetter
		case c == '-' || c == '_':
			t[c] = kindDash
		case c >= 0x80:
			t[c] = kindHigh
		case c == '/' || c == '?' || c == '#':
			t[c] = kindEnd
		default:
			t[c] = kindOther
		}
	}
	return t
}()

func appendSegment(dst []byte, seg string, kinds uint8, tmpl Template, idx int) []byte {
	if idx < len(tmpl) {
		if t := tmpl[idx]; len(t) > 1 && t[0] == ':' {
			return append(dst, t...)
		}
	}
	if isIdentifier(seg, kinds) {
		return append(dst, ":id"...)
	}
	return append(dst, seg...)
}

// capLength cuts dst[start:] to at most maxLen bytes without splitting a
// UTF-8 sequence.
func capLength(dst []byte, start, maxLen int) []byte {
	if len(dst)-start <= maxLen {
		return dst
	}
	dst = dst[:start+maxLen]
	for i := 0; i < utf8.UTFMax && len(dst) > start; i++ {
		r, size := utf8.DecodeLastRune(dst[start:])
		if r != utf8.RuneError || size > 1 {
			break
		}
		dst = dst[:len(dst)-1]
	}
	return dst
}

// isIdentifier reports whether a segment looks like an id rather than a
// route word: all digits, a UUID, a long hex string, a long random token
// (letters and digits), or bytes that are not valid UTF-8. kinds is the union
// of the segment's character kinds.
func isIdentifier(seg string, kinds uint8) bool {
	switch {
	case kinds&kindHigh != 0:
		return !utf8.ValidString(seg)
	case kinds == kindDigit:
		return true
	case kinds&kindDigit == 0 || kinds&kindOther != 0:
		return false
	case len(seg) == 36 && isUUID(seg):
		return true
	case len(seg) >= 16 && kinds&^(kindDigit|kindHex) == 0:
		return true
	case len(seg) >= 20 && kinds&(kindHex|kindLetter) != 0:
		return true
	}
	return false
}

func isUUID(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if i == 8 || i == 13 || i == 18 || i == 23 {
			if c != '-' {
				return false
			}
			continue
		}
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

// popSegment removes the last "/segment" written after start.
func popSegment(dst []byte, start int) []byte {
	for len(dst) > start {
		c := dst[len(dst)-1]
		dst = dst[:len(dst)-1]
		if c == '/' {
			break
		}
	}
	return dst
}
