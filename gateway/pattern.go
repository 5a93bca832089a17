package gateway

import (
	"fmt"
	"strings"

	"github.com/pathstats/pathstats"
)

type segKind uint8

const (
	segLiteral segKind = iota
	segParam
	segWildcard
)

type segment struct {
	kind segKind
	text string // the literal, or the parameter name
}

// pattern is a compiled route pattern.
type pattern struct {
	segs     []segment
	literals int  // number of literal segments
	wildcard bool // ends with "*"
}

// compilePattern validates and compiles a route pattern.
func compilePattern(s string) (*pattern, error) {
	if s == "" || s[0] != '/' {
		return nil, fmt.Errorf("pattern %q: must start with /", s)
	}
	if len(s) > pathstats.MaxPathLength {
		return nil, fmt.Errorf("pattern %q: longer than %d bytes", s[:32]+"…", pathstats.MaxPathLength)
	}
	p := &pattern{}
	if s == "/" {
		return p, nil
	}
	parts := strings.Split(s[1:], "/")
	names := map[string]bool{}
	for i, part := range parts {
		seg, err := compileSegment(part, i == len(parts)-1, names)
		if err != nil {
			return nil, fmt.Errorf("pattern %q: %w", s, err)
		}
		switch seg.kind {
		case segLiteral:
			p.literals++
		case segWildcard:
			p.wildcard = true
		}
		p.segs = append(p.segs, seg)
	}
	return p, nil
}

func compileSegment(part string, last bool, names map[string]bool) (segment, error) {
	switch {
	case part == "":
		return segment{}, fmt.Errorf("empty segment (no // and no trailing /)")
	case part == "*":
		if !last {
			return segment{}, fmt.Errorf(`"*" must be the last segment`)
		}
		return segment{kind: segWildcard}, nil
	case part[0] == ':':
		name := part[1:]
		if !validParamName(name) {
			return segment{}, fmt.Errorf("parameter %q: name must be a letter or _ followed by letters, digits or _", part)
		}
		if names[name] {
			return segment{}, fmt.Errorf("parameter %q: name used twice", part)
		}
		names[name] = true
		return segment{kind: segParam, text: name}, nil
	case part == "." || part == "..":
		return segment{}, fmt.Errorf("dot segment %q", part)
	}
	for i := 0; i < len(part); i++ {
		if c := part[i]; c <= ' ' || c == 0x7f || strings.IndexByte("*=?#%", c) >= 0 {
			return segment{}, fmt.Errorf("segment %q: invalid character %q", part, c)
		}
	}
	return segment{kind: segLiteral, text: part}, nil
}

func validParamName(s string) bool {
	if s == "" || '0' <= s[0] && s[0] <= '9' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isAlnum(s[i]) && s[i] != '_' {
			return false
		}
	}
	return true
}

// shape is the pattern with parameter names dropped: two patterns with the
// same shape match the same paths.
func (p *pattern) shape() string {
	var b strings.Builder
	for _, s := range p.segs {
		b.WriteByte('/')
		switch s.kind {
		case segLiteral:
			b.WriteString(s.text)
		case segParam:
			b.WriteByte(':')
		case segWildcard:
			b.WriteByte('*')
		}
	}
	if b.Len() == 0 {
		return "/"
	}
	return b.String()
}

// trimPath strips the leading slash and one trailing slash; ok is false for
// a path that does not start with "/".
func trimPath(path string) (string, bool) {
	if path == "" || path[0] != '/' {
		return "", false
	}
	rest := path[1:]
	if n := len(rest); n > 0 && rest[n-1] == '/' {
		rest = rest[:n-1]
	}
	return rest, true
}

// match reports whether path matches; it does not allocate.
func (p *pattern) match(path string) bool {
	rest, ok := trimPath(path)
	if !ok {
		return false
	}
	end := rest == ""
	for _, s := range p.segs {
		if s.kind == segWildcard {
			return true
		}
		if end {
			return false
		}
		var seg string
		var more bool
		seg, rest, more = strings.Cut(rest, "/")
		end = !more
		if s.kind == segLiteral && seg != s.text || s.kind == segParam && seg == "" {
			return false
		}
	}
	return end
}

// template returns path with parameter segments replaced by ":name".
func (p *pattern) template(path string) (string, bool) {
	if !p.match(path) {
		return "", false
	}
	rest, _ := trimPath(path)
	var b strings.Builder
	for _, s := range p.segs {
		if s.kind == segWildcard {
			if rest != "" {
				b.WriteByte('/')
				b.WriteString(rest)
			}
			break
		}
		var seg string
		seg, rest, _ = strings.Cut(rest, "/")
		b.WriteByte('/')
		if s.kind == segParam {
			b.WriteByte(':')
			b.WriteString(s.text)
		} else {
			b.WriteString(seg)
		}
	}
	if b.Len() == 0 {
		return "/", true
	}
	return b.String(), true
}
