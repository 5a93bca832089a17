package gateway

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/pathstats/pathstats"
)

// maxProxyIDLen bounds a proxyId.
const maxProxyIDLen = 64

// Route sends requests whose path matches Pattern to Upstream, recording them
// under ProxyID.
//
// A pattern starts with "/" and is made of segments separated by "/": a
// literal segment matches itself, ":name" matches any one non-empty segment,
// and a final "*" matches the rest of the path (zero or more segments, so
// "/api/*" matches "/api" too). "/" alone matches only the root. A request
// path with one trailing slash matches like the same path without it.
type Route struct {
	ProxyID  string
	Pattern  string
	Upstream *url.URL

	pat *pattern // compiled Pattern; nil for a Route built as a literal
}

// ParseRoute parses a --route value of the form ID=PATTERN=URL.
func ParseRoute(s string) (Route, error) {
	id, rest, ok1 := strings.Cut(s, "=")
	pat, raw, ok2 := strings.Cut(rest, "=")
	if !ok1 || !ok2 {
		return Route{}, errors.New("parse route: want ID=PATTERN=URL")
	}
	u, err := parseUpstream(raw)
	if err != nil {
		return Route{}, fmt.Errorf("parse route %q: %w", id, err)
	}
	r, err := Route{ProxyID: id, Pattern: pat, Upstream: u}.compile()
	if err != nil {
		return Route{}, fmt.Errorf("parse route %q: %w", id, err)
	}
	return r, nil
}

// DefaultRoute returns the route of --upstream: proxyId "default", pattern "/*".
func DefaultRoute(upstream string) (Route, error) {
	u, err := parseUpstream(upstream)
	if err != nil {
		return Route{}, fmt.Errorf("default route: %w", err)
	}
	return Route{ProxyID: pathstats.DefaultProxyID, Pattern: "/*", Upstream: u}.compile()
}

// Template returns the route's path pattern, e.g. "/users/:id"; the recorder
// prefers it to its own normalisation.
func (r Route) Template() string { return r.Pattern }

// String returns the route in --route syntax.
func (r Route) String() string {
	u := ""
	if r.Upstream != nil {
		u = r.Upstream.String()
	}
	return r.ProxyID + "=" + r.Pattern + "=" + u
}

// Match reports whether path (a request's URL.Path) matches the route's
// pattern. An invalid pattern matches nothing.
func (r Route) Match(path string) bool {
	p := r.pat
	if p == nil {
		var err error
		if p, err = compilePattern(r.Pattern); err != nil {
			return false
		}
	}
	return p.match(path)
}

// TemplatePath rewrites a matching path with the pattern's parameter names:
// with "/users/:id/*", "/users/42/files/a" becomes "/users/:id/files/a". The
// part matched by "*" is kept as it is. ok is false when path does not match.
func (r Route) TemplatePath(path string) (string, bool) {
	p := r.pat
	if p == nil {
		var err error
		if p, err = compilePattern(r.Pattern); err != nil {
			return "", false
		}
	}
	return p.template(path)
}

// compile validates every field and returns r with its pattern compiled.
func (r Route) compile() (Route, error) {
	if err := validateProxyID(r.ProxyID); err != nil {
		return Route{}, err
	}
	p, err := compilePattern(r.Pattern)
	if err != nil {
		return Route{}, err
	}
	if err := validateUpstream(r.Upstream); err != nil {
		return Route{}, err
	}
	r.pat = p
	return r, nil
}

func validateProxyID(id string) error {
	if id == "" || len(id) > maxProxyIDLen {
		return fmt.Errorf("proxy id %q: must be 1-%d characters", id, maxProxyIDLen)
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; !isAlnum(c) && c != '_' && c != '.' && c != '-' {
			return fmt.Errorf("proxy id %q: invalid character %q (allowed: A-Z a-z 0-9 _ . -)", id, c)
		}
	}
	return nil
}

func parseUpstream(raw string) (*url.URL, error) {
	if raw == "" {
		return nil, errors.New("missing upstream url")
	}
	u, err := url.Parse(raw)
	if err != nil {
		// The url.Error would quote raw, credentials included.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("upstream: want an absolute http or https url: %w", err)
	}
	if err := validateUpstream(u); err != nil {
		return nil, err
	}
	return u, nil
}

func validateUpstream(u *url.URL) error {
	switch {
	case u == nil:
		return errors.New("missing upstream url")
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("upstream %q: scheme must be http or https", u.Redacted())
	case u.Host == "" || u.Hostname() == "":
		return fmt.Errorf("upstream %q: missing host", u.Redacted())
	case u.User != nil:
		return fmt.Errorf("upstream %q: credentials in the url are not supported", u.Redacted())
	case u.Fragment != "":
		return fmt.Errorf("upstream %q: fragment not allowed", u.Redacted())
	}
	return nil
}

func isAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}
