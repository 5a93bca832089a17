package storetest

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/pathstats/pathstats"
)

// testPathConfigs round-trips path configs: create, replace (CreatedAt
// kept), list in path order, delete, delete again (ErrNotFound).
func testPathConfigs(t *testing.T, s Store, clk *Clock) {
	ctx := context.Background()
	list := func(want ...pathstats.PathConfig) {
		t.Helper()
		got, err := s.ListPathConfigs(ctx)
		if err != nil {
			t.Fatalf("list path configs: %v", err)
		}
		if len(got) != 0 || len(want) != 0 {
			if !reflect.DeepEqual(got, want) {
				t.Errorf("list path configs:\n got %+v\nwant %+v", got, want)
			}
		}
	}
	put := func(c pathstats.PathConfig, created, updated time.Time) pathstats.PathConfig {
		t.Helper()
		got, err := s.PutPathConfig(ctx, c)
		if err != nil {
			t.Fatalf("put path config %q: %v", c.Path, err)
		}
		c.CreatedAt, c.UpdatedAt = created, updated
		if !reflect.DeepEqual(got, c) {
			t.Errorf("put path config:\n got %+v\nwant %+v", got, c)
		}
		return got
	}
	list()

	t1 := windowNow.Add(1234 * time.Millisecond)
	clk.Set(t1)
	b := put(pathstats.PathConfig{
		Path: "/b/:id", ProxyID: "p1", ProxyPattern: "/b/*",
		Cache:     pathstats.CacheConfig{Enabled: true, TTLSeconds: 60},
		RateLimit: pathstats.RateLimitConfig{Enabled: true, RequestsPerMinute: 600},
		Geo:       pathstats.GeoConfig{Enabled: true, Allow: []string{"DE", "FR"}, Deny: []string{"XX"}},
	}, t1, t1)
	list(b)

	t2 := t1.Add(time.Minute)
	clk.Set(t2)
	a := put(pathstats.PathConfig{Path: "/a", Cache: pathstats.CacheConfig{Enabled: false}}, t2, t2)
	list(a, b)

	t3 := t2.Add(time.Minute)
	clk.Set(t3)
	b2 := put(pathstats.PathConfig{
		Path: "/b/:id", ProxyID: "p2", ProxyPattern: "/b/**",
		Geo:       pathstats.GeoConfig{Enabled: true, Deny: []string{"YY"}},
		CreatedAt: t3.Add(time.Hour), UpdatedAt: t3.Add(time.Hour), // ignored: the store sets both
	}, t1, t3)
	list(a, b2)

	if err := s.DeletePathConfig(ctx, "/b/:id"); err != nil {
		t.Fatalf("delete path config: %v", err)
	}
	list(a)
	for _, p := range []string{"/b/:id", "/never"} {
		if err := s.DeletePathConfig(ctx, p); !errors.Is(err, pathstats.ErrNotFound) {
			t.Errorf("delete path config %q: %v, want ErrNotFound", p, err)
		}
	}
	c := put(pathstats.PathConfig{Path: "/b/:id"}, t3, t3)
	list(a, c)
	if _, err := s.PutPathConfig(ctx, pathstats.PathConfig{}); err == nil {
		t.Errorf("put path config without a path: no error")
	}
	list(a, c)
}
