package recorder

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestNormalize(t *testing.T) {
	n := &Normalizer{}
	cases := []struct{ in, tmpl, want string }{
		{"/", "", "/"},
		{"", "", "/"},
		{"/api/users", "", "/api/users"},
		{"/api/users/", "", "/api/users"},
		{"/api/users?id=3&x=y", "", "/api/users"},
		{"/api/users#frag", "", "/api/users"},
		{"//api///users//", "", "/api/users"},
		{"/api/./users/../orders", "", "/api/orders"},
		{"/../../etc/passwd", "", "/etc/passwd"},
		{"/api/users/12345", "", "/api/users/:id"},
		{"/api/users/12345/orders/77", "", "/api/users/:id/orders/:id"},
		{"/api/orders/3f2504e0-4f89-11d3-9a0c-0305e82c3301", "", "/api/orders/:id"},
		{"/blobs/0123456789abcdef0123", "", "/blobs/:id"},
		{"/t/aZ9kQ2mN7pL4xR8sT1vW", "", "/t/:id"},
		{"/api/v2/products", "", "/api/v2/products"},
		{"/static/app.js", "", "/static/app.js"},
		{"/deadbeefcafebabe", "", "/deadbeefcafebabe"}, // hex without digits stays
		{"/users/alice", "/users/:name", "/users/:name"},
		{"/users/alice/posts/5", "/users/:name/*", "/users/:name/posts/:id"},
		{"/a/\xff\xfe", "", "/a/:id"},
		{"/ünïcode/päth", "", "/ünïcode/päth"},
		{"/100%/a_b\\c", "", "/100%/a_b\\c"},
	}
	for _, c := range cases {
		got := n.Normalize(c.in, ParseTemplate(c.tmpl))
		if got != c.want {
			t.Errorf("Normalize(%q, %q) = %q, want %q", c.in, c.tmpl, got, c.want)
		}
	}
}

func TestNormalizeCapsLength(t *testing.T) {
	n := &Normalizer{MaxLength: 64}
	got := n.Normalize("/"+strings.Repeat("é", 1000), nil)
	if len(got) > 64 || !utf8.ValidString(got) {
		t.Fatalf("len %d valid %v", len(got), utf8.ValidString(got))
	}
	huge := "/" + strings.Repeat("abc/", 300_000)
	if got := (&Normalizer{}).Normalize(huge, nil); len(got) > 1024 {
		t.Fatalf("1 MB path not capped: %d bytes", len(got))
	}
}

func TestNormalizeDisabled(t *testing.T) {
	n := &Normalizer{Disabled: true}
	if got := n.Normalize("/users/123?x=1", nil); got != "/users/123" {
		t.Fatalf("got %q", got)
	}
	if got := n.Normalize("users", nil); got != "/users" {
		t.Fatalf("got %q", got)
	}
}

func FuzzNormalizePath(f *testing.F) {
	for _, s := range []string{"/", "/a/b/../c", "//x//y?q", "/users/123", "/\xff", "/a/./../../b", ""} {
		f.Add(s, "")
	}
	f.Add("/users/bob/x", "/users/:name/*")
	f.Fuzz(func(t *testing.T, in, pattern string) {
		n := &Normalizer{MaxLength: 128}
		out := n.Normalize(in, ParseTemplate(pattern))
		if out == "" || out[0] != '/' {
			t.Fatalf("%q → %q: must start with /", in, out)
		}
		if len(out) > 128 {
			t.Fatalf("%q → %q: longer than the cap", in, out)
		}
		if !utf8.ValidString(out) {
			t.Fatalf("%q → %q: invalid UTF-8", in, out)
		}
		if strings.Contains(out, "//") || strings.ContainsAny(out, "?#") {
			t.Fatalf("%q → %q: not normal", in, out)
		}
		if again := n.Normalize(out, ParseTemplate(pattern)); again != out && len(out) < 128 {
			t.Fatalf("not idempotent: %q → %q → %q", in, out, again)
		}
	})
}
