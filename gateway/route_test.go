package gateway

import (
	"strings"
	"testing"
)

func TestParseRoute(t *testing.T) {
	good := []struct {
		in, id, pattern, upstream string
	}{
		{"api=/api/*=http://127.0.0.1:9000", "api", "/api/*", "http://127.0.0.1:9000"},
		{"users.v2-x_1=/users/:id=https://svc.internal/base", "users.v2-x_1", "/users/:id", "https://svc.internal/base"},
		{"root=/=http://h", "root", "/", "http://h"},
		{"all=/*=http://h:80", "all", "/*", "http://h:80"},
		{"q=/a/:x/b/:y/*=http://h/p?k=v&z=1", "q", "/a/:x/b/:y/*", "http://h/p?k=v&z=1"},
		{"c=/v1/things:batchGet=http://[::1]:8080", "c", "/v1/things:batchGet", "http://[::1]:8080"},
		{strings.Repeat("a", 64) + "=/x=http://h", strings.Repeat("a", 64), "/x", "http://h"},
	}
	for _, tc := range good {
		r, err := ParseRoute(tc.in)
		if err != nil {
			t.Errorf("ParseRoute(%q): %v", tc.in, err)
			continue
		}
		if r.ProxyID != tc.id || r.Pattern != tc.pattern || r.Template() != tc.pattern || r.Upstream.String() != tc.upstream {
			t.Errorf("ParseRoute(%q) = %q %q %q", tc.in, r.ProxyID, r.Pattern, r.Upstream)
		}
		if r.String() != tc.in {
			t.Errorf("String() = %q, want %q", r.String(), tc.in)
		}
	}

	bad := []struct{ in, want string }{
		{"", "want ID=PATTERN=URL"},
		{"api", "want ID=PATTERN=URL"},
		{"api=/x", "want ID=PATTERN=URL"},
		{"=/x=http://h", "proxy id"},
		{strings.Repeat("a", 65) + "=/x=http://h", "1-64 characters"},
		{"a b=/x=http://h", "invalid character"},
		{"a/b=/x=http://h", "invalid character"},
		{"api==http://h", "must start with /"},
		{"api=x=http://h", "must start with /"},
		{"api=/a//b=http://h", "empty segment"},
		{"api=/a/=http://h", "empty segment"},
		{"api=/*/a=http://h", `"*" must be the last segment`},
		{"api=/a*=http://h", "invalid character"},
		{"api=/:=http://h", "parameter"},
		{"api=/:1a=http://h", "parameter"},
		{"api=/:a-b=http://h", "parameter"},
		{"api=/:id/:id=http://h", "name used twice"},
		{"api=/a/../b=http://h", "dot segment"},
		{"api=/a?b=http://h", "invalid character"},
		{"api=/a%20=http://h", "invalid character"},
		{"api=/a b=http://h", "invalid character"},
		{"api=/" + strings.Repeat("a", 1100) + "=http://h", "longer than"},
		{"api=/x=", "missing upstream url"},
		{"api=/x=ftp://h", "scheme must be http or https"},
		{"api=/x=127.0.0.1:9000", "want an absolute http or https url"},
		{"api=/x=//h", "scheme must be http or https"},
		{"api=/x=http://", "missing host"},
		{"api=/x=http://:80", "missing host"},
		{"api=/x=http:/path", "missing host"},
		{"api=/x=http://u:p@h", "credentials"},
		{"api=/x=http://h#frag", "fragment"},
		{"api=/x=http://h:bad", "upstream"},
	}
	for _, tc := range bad {
		_, err := ParseRoute(tc.in)
		if err == nil {
			t.Errorf("ParseRoute(%q): no error", tc.in)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseRoute(%q) = %v, want it to mention %q", tc.in, err, tc.want)
		}
	}
	for _, s := range []string{"api=/x=http://u:secret@h", "api=/x=http://u:secret@h:bad", "api=/=x=http://u:secret@h"} {
		if msg := errOf(ParseRoute(s)); msg == "" || strings.Contains(msg, "secret") {
			t.Errorf("ParseRoute(%q) = %q: no error, or it leaks the password", s, msg)
		}
	}
}

func errOf(_ Route, err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func TestDefaultRoute(t *testing.T) {
	r, err := DefaultRoute("http://127.0.0.1:9000")
	if err != nil {
		t.Fatal(err)
	}
	if r.ProxyID != "default" || r.Pattern != "/*" || r.Upstream.Host != "127.0.0.1:9000" {
		t.Fatalf("DefaultRoute = %+v", r)
	}
	if _, err := DefaultRoute("not a url"); err == nil {
		t.Fatal("DefaultRoute accepted a bad url")
	}
}

func TestRouteMatch(t *testing.T) {
	cases := []struct {
		pattern string
		yes     []string
		no      []string
	}{
		{"/", []string{"/"}, []string{"/a", "", "a"}},
		{"/*", []string{"/", "/a", "/a/b/c", "//x"}, []string{"", "a"}},
		{"/api", []string{"/api", "/api/"}, []string{"/", "/ap", "/apix", "/api/x", "/API", "/api//"}},
		{"/api/*", []string{"/api", "/api/", "/api/x", "/api/x/y/"}, []string{"/", "/apix", "/ap", "/x/api"}},
		{"/users/:id", []string{"/users/42", "/users/42/", "/users/a:b"}, []string{"/users", "/users/", "/users//", "/users/42/x"}},
		{"/users/:id/posts/:pid", []string{"/users/1/posts/2"}, []string{"/users/1/posts", "/users/1/post/2", "/users//posts/2"}},
		{"/a/:x/*", []string{"/a/b", "/a/b/c/d"}, []string{"/a", "/a/", "/b/c"}},
	}
	for _, tc := range cases {
		r := mustRoute(t, "r="+tc.pattern+"=http://h")
		lit := Route{ProxyID: "r", Pattern: tc.pattern} // uncompiled: Match compiles
		for _, p := range tc.yes {
			if !r.Match(p) || !lit.Match(p) {
				t.Errorf("%q should match %q", tc.pattern, p)
			}
		}
		for _, p := range tc.no {
			if r.Match(p) || lit.Match(p) {
				t.Errorf("%q should not match %q", tc.pattern, p)
			}
		}
	}
	if (Route{Pattern: "no-slash"}).Match("/no-slash") {
		t.Error("an invalid pattern matched")
	}
}

func TestTemplatePath(t *testing.T) {
	cases := []struct{ pattern, path, want string }{
		{"/users/:id", "/users/42", "/users/:id"},
		{"/users/:id", "/users/42/", "/users/:id"},
		{"/users/:id/*", "/users/42/files/a.txt", "/users/:id/files/a.txt"},
		{"/users/:id/*", "/users/42", "/users/:id"},
		{"/api/*", "/api/x/y", "/api/x/y"},
		{"/*", "/", "/"},
		{"/", "/", "/"},
	}
	for _, tc := range cases {
		got, ok := mustRoute(t, "r="+tc.pattern+"=http://h").TemplatePath(tc.path)
		if !ok || got != tc.want {
			t.Errorf("TemplatePath(%q, %q) = %q, %v; want %q", tc.pattern, tc.path, got, ok, tc.want)
		}
	}
	if _, ok := mustRoute(t, "r=/users/:id=http://h").TemplatePath("/other"); ok {
		t.Error("TemplatePath of a path that does not match")
	}
}

func TestRouterMostSpecific(t *testing.T) {
	var routes []Route
	for _, s := range []string{
		"default=/*=http://d",
		"api=/api/*=http://a",
		"user=/api/users/:id=http://u",
		"me=/api/users/me=http://m",
		"posts=/api/users/:id/posts=http://p",
		"files=/api/users/:id/*=http://f",
		"deep=/api/:v/users/:id/x=http://x",
		"root=/=http://r",
	} {
		routes = append(routes, mustRoute(t, s))
	}
	rt, err := NewRouter(routes)
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]string{
		"/":                    "root",
		"/x":                   "default",
		"/apix":                "default",
		"/api":                 "api",
		"/api/other":           "api",
		"/api/users":           "api",
		"/api/users/me":        "me",
		"/api/users/42":        "user",
		"/api/users/42/":       "user",
		"/api/users/42/posts":  "posts",
		"/api/users/42/photos": "files",
		"/api/v1/users/42/x":   "deep",
		"/api/users/me/posts":  "posts",
		"/api/users/42/a/b/c":  "files",
	}
	for path, want := range cases {
		r, ok := rt.Match(path)
		if !ok || r.ProxyID != want {
			t.Errorf("Match(%q) = %q, want %q", path, r.ProxyID, want)
		}
	}
	got := rt.Routes()
	if last := got[len(got)-1]; last.ProxyID != "default" {
		t.Errorf("catch-all is not last: %q", last.ProxyID)
	}

	onlyAPI, err := NewRouter([]Route{mustRoute(t, "api=/api/*=http://a")})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := onlyAPI.Match("/other"); ok {
		t.Error("matched a path no route covers")
	}
}

func TestNewRouterErrors(t *testing.T) {
	if _, err := NewRouter(nil); err == nil {
		t.Error("no routes accepted")
	}
	a := mustRoute(t, "a=/users/:id=http://a")
	b := mustRoute(t, "b=/users/:name=http://b")
	if _, err := NewRouter([]Route{a, b}); err == nil || !strings.Contains(err.Error(), "same paths") {
		t.Errorf("ambiguous routes: %v", err)
	}
	lit := Route{ProxyID: "x", Pattern: "/x"} // no upstream
	if _, err := NewRouter([]Route{lit}); err == nil || !strings.Contains(err.Error(), "missing upstream") {
		t.Errorf("route without upstream: %v", err)
	}
}

func FuzzParseRoute(f *testing.F) {
	for _, s := range []string{"api=/api/*=http://h", "u=/users/:id/x=https://h:1/p?q", "d=/=http://h", "x=/a//b=http://h", "=="} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRoute(s)
		if err != nil {
			return
		}
		again, err := ParseRoute(r.String())
		if err != nil || again.String() != r.String() {
			t.Fatalf("round trip of %q: %q, %v", s, again.String(), err)
		}
		// The pattern with every parameter filled in matches itself.
		path := fillPattern(r.Pattern)
		if !r.Match(path) {
			t.Fatalf("%q does not match %q", r.Pattern, path)
		}
		if tp, ok := r.TemplatePath(path); !ok || !r.Match(tp) {
			t.Fatalf("TemplatePath(%q) = %q, %v", path, tp, ok)
		}
	})
}

// fillPattern returns a path matching pattern: "v" for each parameter,
// nothing for "*".
func fillPattern(pattern string) string {
	segs := strings.Split(pattern, "/")
	for i, s := range segs {
		if strings.HasPrefix(s, ":") {
			segs[i] = "v"
		}
	}
	if segs[len(segs)-1] == "*" {
		segs = segs[:len(segs)-1]
	}
	if p := strings.Join(segs, "/"); p != "" {
		return p
	}
	return "/"
}

func mustRoute(t testing.TB, s string) Route {
	t.Helper()
	r, err := ParseRoute(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
