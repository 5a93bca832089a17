package gateway

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
)

// Router finds the most specific route for a path.
type Router struct {
	routes []Route // most specific first
}

// NewRouter validates routes and orders them by specificity: more literal
// segments first, then more segments, then patterns without "*", then the
// longer pattern text, then the order given. A catch-all such as the default
// route "/*" therefore comes last. Two routes whose patterns match the same
// paths (same shape, parameter names aside) are an error.
func NewRouter(routes []Route) (*Router, error) {
	if len(routes) == 0 {
		return nil, errors.New("new router: no routes")
	}
	out := make([]Route, 0, len(routes))
	seen := make(map[string]string, len(routes))
	for _, r := range routes {
		c, err := r.compile()
		if err != nil {
			return nil, fmt.Errorf("new router: route %q: %w", r.ProxyID, err)
		}
		shape := c.pat.shape()
		if other, dup := seen[shape]; dup {
			return nil, fmt.Errorf("new router: route %q: pattern %q matches the same paths as route %q", r.ProxyID, r.Pattern, other)
		}
		seen[shape] = r.ProxyID
		out = append(out, c)
	}
	slices.SortStableFunc(out, compareSpecificity)
	return &Router{routes: out}, nil
}

// compareSpecificity orders the more specific route first.
func compareSpecificity(a, b Route) int {
	pa, pb := a.pat, b.pat
	if c := cmp.Compare(pb.literals, pa.literals); c != 0 {
		return c
	}
	if c := cmp.Compare(pb.fixedLen(), pa.fixedLen()); c != 0 {
		return c
	}
	if pa.wildcard != pb.wildcard {
		if pa.wildcard {
			return 1
		}
		return -1
	}
	return cmp.Compare(len(b.Pattern), len(a.Pattern))
}

// fixedLen is the number of segments other than a final "*".
func (p *pattern) fixedLen() int {
	if p.wildcard {
		return len(p.segs) - 1
	}
	return len(p.segs)
}

// Routes returns the routes, most specific first.
func (rt *Router) Routes() []Route { return slices.Clone(rt.routes) }

// Match returns the most specific route matching path.
func (rt *Router) Match(path string) (Route, bool) {
	if i := rt.index(path); i >= 0 {
		return rt.routes[i], true
	}
	return Route{}, false
}

func (rt *Router) index(path string) int {
	for i := range rt.routes {
		if rt.routes[i].pat.match(path) {
			return i
		}
	}
	return -1
}
