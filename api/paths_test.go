package api

import (
	"net/url"
	"strings"
	"testing"

	"github.com/pathstats/pathstats"
)

func TestParsePathQuery(t *testing.T) {
	good := []struct {
		raw         string
		page, limit int
		q, proxy    string
	}{
		{"", 1, 50, "", ""},
		{"page=3&limit=20", 3, 20, "", ""},
		{"limit=1000", 1, 200, "", ""},
		{"limit=200", 1, 200, "", ""},
		{"q=%25&proxyId=api", 1, 50, "%", "api"},
		{"q=" + strings.Repeat("é", 256), 1, 50, strings.Repeat("é", 256), ""},
	}
	for _, g := range good {
		v, _ := url.ParseQuery(g.raw)
		q, err := ParsePathQuery(v)
		if err != nil || q.Page != g.page || q.Limit != g.limit || q.Q != g.q || q.ProxyID != g.proxy {
			t.Errorf("%q: %+v %v", g.raw, q, err)
		}
	}
	bad := []string{"page=0", "page=-1", "page=abc", "page=1e3", "page=", "page=1.5", "page=+1", "page=%201",
		"limit=0", "limit=abc", "limit=-5", "page=99999999999999", "q=" + strings.Repeat("a", 257),
		"proxyId=" + strings.Repeat("p", 65), "page=6000000&limit=200"}
	for _, raw := range bad {
		v, _ := url.ParseQuery(raw)
		_, err := ParsePathQuery(v)
		if pathstats.ErrorCode(err) != pathstats.EInvalidParameter {
			t.Errorf("%q: got %v, want INVALID_PARAMETER", truncate(raw, 40), err)
		}
	}
}

func FuzzParsePathQuery(f *testing.F) {
	for _, s := range []string{"page=1&limit=50", "page=abc", "q=%25_%5C", "limit=9999999999999999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		v, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		q, err := ParsePathQuery(v)
		if err != nil {
			if pathstats.ErrorCode(err) != pathstats.EInvalidParameter {
				t.Fatalf("%q: non-400 error %v", raw, err)
			}
			return
		}
		if q.Page < 1 || q.Limit < 1 || q.Limit > MaxLimit || q.Offset() < 0 {
			t.Fatalf("%q: accepted %+v", raw, q)
		}
	})
}

func TestPagination(t *testing.T) {
	p := NewPagination(2, 10, 25)
	if p.TotalPages != 3 || !p.HasNext || !p.HasPrev {
		t.Fatalf("%+v", p)
	}
	if p := NewPagination(1, 10, 0); p.TotalPages != 0 || p.HasNext || p.HasPrev {
		t.Fatalf("%+v", p)
	}
}

func TestPathConfigValidate(t *testing.T) {
	ok := PathConfigInput{Path: "/a", Cache: &pathstats.CacheConfig{Enabled: true, TTLSeconds: 60}, Geo: &pathstats.GeoConfig{Enabled: true, Deny: []string{"CN"}}}
	if c, err := ok.validate(); err != nil || !c.Cache.Enabled || c.Geo.Deny[0] != "CN" {
		t.Fatalf("%+v %v", c, err)
	}
	bad := []PathConfigInput{
		{Path: ""}, {Path: "a"}, {Path: "/" + strings.Repeat("x", 2000)}, {Path: "/\xff"},
		{Path: "/a", Cache: &pathstats.CacheConfig{TTLSeconds: -1}},
		{Path: "/a", RateLimit: &pathstats.RateLimitConfig{RequestsPerMinute: -3}},
		{Path: "/a", Geo: &pathstats.GeoConfig{Allow: []string{"usa"}}},
	}
	for _, b := range bad {
		if _, err := b.validate(); err == nil {
			t.Errorf("accepted %+v", b)
		}
	}
}
