package main

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pathstats/pathstats"
	"github.com/pathstats/pathstats/internal/testutil"
	"github.com/pathstats/pathstats/nats"
)

// refPath is the reference data: what was ingested per (proxy, path).
type refPath struct {
	path, proxy string
	requests    int64
}

// pathsAnswer is the /paths JSON answer.
type pathsAnswer struct {
	Success bool `json:"success"`
	Data    []struct {
		Path         string `json:"path"`
		ProxyID      string `json:"proxyId"`
		RequestCount int64  `json:"requestCount"`
		Metadata     struct {
			Source string `json:"source"`
		} `json:"metadata"`
		Cache struct {
			Enabled bool `json:"enabled"`
		} `json:"cache"`
	} `json:"data"`
	Pagination struct {
		Page, Limit, Total, TotalPages int
		HasNext, HasPrev               bool
	} `json:"pagination"`
	Metadata struct {
		DataSource string  `json:"dataSource"`
		Version    *uint64 `json:"version"`
		Stale      bool    `json:"stale"`
		Reason     string  `json:"reason"`
	} `json:"metadata"`
	Error string `json:"error"`
}

func (c *child) paths(t *testing.T, query string) (int, pathsAnswer) {
	t.Helper()
	req, _ := http.NewRequest("GET", c.admin+"/api/admin/paths-v2?"+query, nil)
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var a pathsAnswer
	if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, a
}

// ingestReference posts events for a fixed set of paths (with %, _, \ and
// mixed-case Unicode in them) and returns the reference totals.
func ingestReference(t *testing.T, c *child) []refPath {
	names := []string{"/Api/Users", "/api/orders", "/100%/done", "/a_b/c", `/back\slash`, "/Ünïcode/Straße", "/search", "/x%y_z"}
	var ref []refPath
	var events []map[string]any
	now := time.Now().UnixMilli()
	for i := 0; i < 120; i++ {
		p := refPath{path: fmt.Sprintf("%s/seg%c%d", names[i%len(names)], 'a'+rune(i%5), i), proxy: []string{"api", "web", "edge"}[i%3], requests: int64(1 + (i*37)%50)}
		if i%17 == 0 {
			p.requests = 25 // ties, ordered by path
		}
		ref = append(ref, p)
		for j := int64(0); j < p.requests; j++ {
			events = append(events, map[string]any{"timestamp": now, "path": p.path, "status": 200, "proxyId": p.proxy})
		}
	}
	if code, out := c.do("POST", "/api/v1/events", "application/x-ndjson", ndjson(events...), nil); code != 202 {
		t.Fatalf("ingest: %d %v", code, out)
	}
	return ref
}

// expect filters, sorts and pages the reference like the contract says.
func expect(ref []refPath, q, proxy string, page, limit int) ([]refPath, int) {
	var m []refPath
	for _, r := range ref {
		if proxy != "" && r.proxy != proxy {
			continue
		}
		if q != "" && !strings.Contains(strings.ToLower(r.path), strings.ToLower(q)) {
			continue
		}
		m = append(m, r)
	}
	slices.SortFunc(m, func(a, b refPath) int {
		if a.requests != b.requests {
			if a.requests > b.requests {
				return -1
			}
			return 1
		}
		if c := strings.Compare(a.path, b.path); c != 0 {
			return c
		}
		return strings.Compare(a.proxy, b.proxy)
	})
	off := min((page-1)*limit, len(m))
	return m[off:min(off+limit, len(m))], len(m)
}

// checkRandomQueries compares random queries with the reference.
func checkRandomQueries(t *testing.T, c *child, ref []refPath, source string, n int) {
	t.Helper()
	rng := rand.New(rand.NewPCG(3, uint64(n)))
	qs := []string{"", "", "%", "_", `\`, "API", "users", "ünï", "STRASSE", "straße", "seg", "SEGA", "x%y", "nothing-here", "/"}
	proxies := []string{"", "", "api", "web", "edge", "unknown"}
	for i := 0; i < n; i++ {
		q, proxy := qs[rng.IntN(len(qs))], proxies[rng.IntN(len(proxies))]
		limit := []int{1, 7, 50, 200, 1000}[rng.IntN(5)]
		page := 1 + rng.IntN(4)
		want, total := expect(ref, q, proxy, page, min(limit, 200))
		v := url.Values{"page": {fmt.Sprint(page)}, "limit": {fmt.Sprint(limit)}}
		if q != "" {
			v.Set("q", q)
		}
		if proxy != "" {
			v.Set("proxyId", proxy)
		}
		code, got := c.paths(t, v.Encode())
		if code != 200 || got.Metadata.DataSource != source {
			t.Fatalf("%s: %d source %q (want %q)", v.Encode(), code, got.Metadata.DataSource, source)
		}
		if got.Pagination.Total != total || len(got.Data) != len(want) {
			t.Fatalf("%s on %s: total %d items %d, want %d and %d", v.Encode(), source, got.Pagination.Total, len(got.Data), total, len(want))
		}
		for j, w := range want {
			g := got.Data[j]
			if g.Path != w.path || g.ProxyID != w.proxy || g.RequestCount != w.requests {
				t.Fatalf("%s on %s item %d: got %s %s %d, want %s %s %d", v.Encode(), source, j, g.Path, g.ProxyID, g.RequestCount, w.path, w.proxy, w.requests)
			}
		}
	}
}

// waitSource polls until /paths-v2 answers from source with the total.
func waitSource(t *testing.T, c *child, source string, total int) pathsAnswer {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		_, a := c.paths(t, "limit=1")
		if a.Metadata.DataSource == source && a.Pagination.Total == total {
			return a
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s answer with total %d in 90s; last: total %d, %+v", source, total, a.Pagination.Total, a.Metadata)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestReadPathEverySource checks /paths-v2 against a reference on the
// snapshot and on the SQL fallback in each fault: config deleted, checksum
// mismatch, payload missing, KV stopped.
func TestReadPathEverySource(t *testing.T) {
	natsSrv := testutil.MustStartNATS(t, -1)
	dir := t.TempDir()
	c := startServe(t, dir, "--queue", natsSrv.ClientURL(), "--snapshot-interval", "300ms", "--snapshot-max-age", "1h")
	ref := ingestReference(t, c)
	waitSource(t, c, "kv-snapshot", len(ref))
	checkRandomQueries(t, c, ref, "kv-snapshot", 60)

	kv, err := nats.OpenKVURL(testutil.Context(t), natsSrv.ClientURL(), nats.KVConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer kv.Close()
	ctx := testutil.Context(t)
	// Stop the writer from repairing what we break: take its lease away.
	c.stop()
	c = startServe(t, dir, "--queue", natsSrv.ClientURL(), "--snapshot-interval", "1h", "--snapshot-max-age", "1h")
	// The writer builds once when elected; after that nothing repairs KV.
	c.waitMetric(`pathstats_snapshot_builds_total{result="ok"}`, 1, 90*time.Second)
	waitSource(t, c, "kv-snapshot", len(ref))

	faults := []struct {
		name   string
		break_ func(cfg map[string]any)
		reason string
	}{
		{"config deleted", nil, "snapshot config missing"},
		{"checksum mismatch", func(cfg map[string]any) { cfg["checksum"] = "sha256:" + strings.Repeat("0", 64) }, "snapshot checksum mismatch"},
		{"payload missing", func(cfg map[string]any) { cfg["version"] = cfg["version"].(float64) + 100 }, "snapshot payload missing"},
	}
	orig, err := kv.Get(ctx, "snapshot:config")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range faults {
		if f.break_ == nil {
			if err := kv.Delete(ctx, "snapshot:config"); err != nil {
				t.Fatal(err)
			}
		} else {
			var cfg map[string]any
			_ = json.Unmarshal(orig.Value, &cfg)
			f.break_(cfg)
			data, _ := json.Marshal(cfg)
			if _, err := kv.Put(ctx, "snapshot:config", data); err != nil {
				t.Fatal(err)
			}
		}
		a := waitSource(t, c, "d1-fallback", len(ref))
		if a.Metadata.Reason != f.reason {
			t.Errorf("%s: reason %q, want %q", f.name, a.Metadata.Reason, f.reason)
		}
		checkRandomQueries(t, c, ref, "d1-fallback", 25)
		if _, err := kv.Put(ctx, "snapshot:config", orig.Value); err != nil {
			t.Fatal(err)
		}
		waitSource(t, c, "kv-snapshot", len(ref))
	}
	natsSrv.Shutdown()
	a := waitSource(t, c, "d1-fallback", len(ref))
	if a.Metadata.Reason != "kv unavailable" {
		t.Errorf("kv stopped: reason %q", a.Metadata.Reason)
	}
	checkRandomQueries(t, c, ref, "d1-fallback", 25)
}

// TestStaleSnapshotOneRefresh: 100 concurrent requests that all see a stale
// snapshot cause exactly one refresh.
func TestStaleSnapshotOneRefresh(t *testing.T) {
	dir := t.TempDir()
	c := startServe(t, dir, "--snapshot-interval", "1h", "--snapshot-max-age", "1s")
	ref := ingestReference(t, c)
	// The build at start saw no data; wait until it is stale, then one
	// request's refresh brings the data.
	time.Sleep(1100 * time.Millisecond)
	before := c.metric(`pathstats_readpath_refresh_requests_total`)
	var wg sync.WaitGroup
	var mu sync.Mutex
	stale := 0
	for i := 0; i < 100; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, a := c.paths(t, "limit=5")
			mu.Lock()
			if a.Metadata.Stale {
				stale++
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	if stale == 0 {
		t.Fatal("no request saw the stale snapshot")
	}
	if got := c.metric(`pathstats_readpath_refresh_requests_total`) - before; got != 1 {
		t.Fatalf("%d stale answers asked for %v refreshes, want 1", stale, got)
	}
	waitSource(t, c, "kv-snapshot", len(ref))
}

// TestPathsBadParameters: each bad parameter is a 400 INVALID_PARAMETER.
func TestPathsBadParameters(t *testing.T) {
	c := startServe(t, t.TempDir())
	for _, q := range []string{"page=0", "page=-1", "page=abc", "page=1e3", "limit=0", "limit=abc", "q=" + strings.Repeat("a", 257)} {
		code, a := c.paths(t, q)
		if code != 400 || a.Error != "INVALID_PARAMETER" {
			t.Errorf("%s: %d %s", truncateQ(q), code, a.Error)
		}
	}
	if code, a := c.paths(t, "limit=1000"); code != 200 || a.Pagination.Limit != 200 {
		t.Errorf("limit=1000: %d limit %d", code, a.Pagination.Limit)
	}
	if code, a := c.paths(t, "proxyId=nope"); code != 200 || a.Pagination.Total != 0 || len(a.Data) != 0 {
		t.Errorf("unknown proxyId: %d %+v", code, a.Pagination)
	}
}

func truncateQ(s string) string { return s[:min(len(s), 20)] }

// TestPathConfigsMerged: a manual config shows in items with source manual.
func TestPathConfigsMerged(t *testing.T) {
	c := startServe(t, t.TempDir(), "--snapshot-interval", "200ms")
	ref := ingestReference(t, c)
	target := ref[0].path
	body, _ := json.Marshal(map[string]any{"path": target, "cache": map[string]any{"enabled": true, "ttlSeconds": 60}})
	if code, out := c.do("PUT", "/api/admin/path-configs", "application/json", body, nil); code != 200 {
		t.Fatalf("put config: %d %v", code, out)
	}
	for _, bad := range []string{`{"path":"/x","bogus":1}`, `not json`, `{"path":"nope"}`, `{"path":"/x","cache":{"ttlSeconds":-1}}`} {
		if code, out := c.do("PUT", "/api/admin/path-configs", "application/json", []byte(bad), nil); code != 400 {
			t.Errorf("bad config %s: %d %v", bad, code, out)
		}
	}
	waitSource(t, c, "kv-snapshot", len(ref))
	_, a := c.paths(t, "q="+url.QueryEscape(target)+"&limit=200")
	found := false
	for _, it := range a.Data {
		if it.Path == target {
			found = true
			if it.Metadata.Source != "manual" || !it.Cache.Enabled {
				t.Errorf("config not merged: %+v", it)
			}
		} else if it.Metadata.Source != "auto" {
			t.Errorf("%s: source %s", it.Path, it.Metadata.Source)
		}
	}
	if !found {
		t.Fatalf("%s not in answer", target)
	}
	if code, _ := c.do("DELETE", "/api/admin/path-configs?path="+url.QueryEscape(target), "", nil, nil); code != 200 {
		t.Fatalf("delete: %d", code)
	}
	if code, _ := c.do("DELETE", "/api/admin/path-configs?path="+url.QueryEscape(target), "", nil, nil); code != 404 {
		t.Fatalf("second delete: %d", code)
	}
	_ = pathstats.DefaultProxyID
}
