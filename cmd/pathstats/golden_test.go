package main

// Golden files: every admin endpoint's success and error answers, recorded
// from the real server under testdata/golden/<case>.golden and compared
// byte for byte. They pin the exact bytes the server writes (key order,
// spacing, number formatting, omitted fields), so a refactor of the HTTP
// layer must leave them unchanged. Rewrite them after an intended contract
// change with
//
//	go test ./cmd/pathstats -run TestGolden -update
//
// A file holds the request line, the status, the recorded headers (those of
// goldenHeaders that are set) and, after a blank line, the body.
//
// Normalisation works on the raw bytes, never on parsed-and-re-encoded
// JSON; everything not named here stays byte-identical. In this order:
//  1. literals: the temp data dir → <data-dir>, the node id → <node>
//     (and an external NATS address → <nats-addr>);
//  2. job ids (16 lowercase hex digits) → <job-id>, rollout ids
//     (ro-<12 hex digits>) → <rollout-id>;
//  3. batch ids ("batchId":"…") → "<batch-id>";
//  4. the snapshot version in list metadata ("dataSource":…,"version":N)
//     → <snapshot-version>, "ageSeconds":N → <age>; "activeActors":N →
//     <actors> (actors go to sleep after a minute idle);
//  5. RFC 3339 times: an event time of the fixture → <tN> (N = index in
//     goldenFixture.times, so ordering and which event wins stay pinned), the
//     start of a fixture hour → <hourK>, anything else (now) → <time>;
//  6. unix seconds / milliseconds (10 / 13 digits): fixture hours and
//     event times → <hourK> / <tN>, anything else → <unix> / <unix-ms>;
//  7. durations ("durationMs":N, "elapsedMs":N) → <ms>; archive sizes
//     ("bytes":N other than 0: compressed Parquet holding event times)
//     → <bytes>.
//
// The request line gets the same rules, after the fixture hours written as
// query values ("2006-01-02T15") → <hourK>. Per case, not globally: the
// 202 of a job start (and its NDJSON job line) has state, progress, result
// and finishedAt normalised, since how far the job got by then is timing;
// the finished job read back later is pinned whole.
//
// Streaming answers (legacy export and archive run NDJSON) are pinned by
// their line count, first and last lines; /metrics by its status and
// content type only (its body holds Go runtime values).

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pathstats/pathstats"
	"github.com/pathstats/pathstats/internal/testutil"
)

var updateGolden = flag.Bool("update", false, "rewrite the golden files under testdata/golden")

// goldenHeaders are the response headers a golden file records when set.
var goldenHeaders = []string{"Allow", "Content-Disposition", "Content-Type", "ETag", "Location", "Retry-After", "WWW-Authenticate",
	"X-Pathstats-Data-Source", "X-Pathstats-Route"}

// goldenReq is one recorded request.
type goldenReq struct {
	name   string // file name under testdata/golden, without .golden
	method string
	path   string
	ctype  string
	body   []byte
	hdr    map[string]string
	noAuth bool
	// shape post-processes the normalised body (streaming answers).
	shape func([]byte) []byte
}

// golden records requests against one server and compares them with the
// files under testdata/golden.
type golden struct {
	t    *testing.T
	c    *child
	norm *normaliser
}

// check sends r, checks its normalised record against the golden file (or
// rewrites it with -update) and returns the status and the raw body.
func (g *golden) check(r goldenReq) (int, []byte) {
	g.t.Helper()
	req, err := http.NewRequest(r.method, g.c.admin+r.path, bytes.NewReader(r.body))
	if err != nil {
		g.t.Fatal(err)
	}
	if !r.noAuth {
		req.Header.Set("Authorization", "Bearer "+g.c.token)
	}
	if r.ctype != "" {
		req.Header.Set("Content-Type", r.ctype)
	}
	for k, v := range r.hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		g.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		g.t.Fatalf("%s: read body: %v", r.name, err)
	}
	g.compare(r.name, g.record(r, resp, raw))
	return resp.StatusCode, raw
}

// record renders a response as a golden file.
func (g *golden) record(r goldenReq, resp *http.Response, raw []byte) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s\nStatus: %d\n", r.method, g.norm.requestPath(r.path), resp.StatusCode)
	for _, h := range goldenHeaders {
		if v := resp.Header.Get(h); v != "" {
			fmt.Fprintf(&b, "%s: %s\n", h, g.norm.apply([]byte(v)))
		}
	}
	b.WriteByte('\n')
	body := g.norm.apply(raw)
	if r.shape != nil {
		body = r.shape(body)
	}
	b.Write(body)
	return b.Bytes()
}

// compare diffs got with the golden file name, or writes it with -update.
func (g *golden) compare(name string, got []byte) {
	g.t.Helper()
	file := filepath.Join("testdata", "golden", name+".golden")
	if *updateGolden {
		if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
			g.t.Fatal(err)
		}
		if err := os.WriteFile(file, got, 0o644); err != nil {
			g.t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(file)
	if err != nil {
		g.t.Errorf("%s: %v (run with -update to create it)", name, err)
		return
	}
	if !bytes.Equal(got, want) {
		g.t.Errorf("%s differs from %s (run with -update if the change is intended):\n%s", name, file, lineDiff(want, got))
	}
}

// lineDiff shows the lines that differ, want then got, with line numbers.
func lineDiff(want, got []byte) string {
	w, gl := strings.Split(string(want), "\n"), strings.Split(string(got), "\n")
	var b strings.Builder
	for i := range max(len(w), len(gl)) {
		var a, c string
		if i < len(w) {
			a = w[i]
		}
		if i < len(gl) {
			c = gl[i]
		}
		if a != c {
			col := firstDiff(a, c)
			fmt.Fprintf(&b, "line %d, column %d:\n  want: …%s\n  got:  …%s\n  whole line want: %s\n  whole line got:  %s\n",
				i+1, col+1, around(a, col), around(c, col), a, c)
		}
	}
	return b.String()
}

// firstDiff is the byte offset of the first difference of a and b.
func firstDiff(a, b string) int {
	i := 0
	for i < len(a) && i < len(b) && a[i] == b[i] {
		i++
	}
	return i
}

// around is s from 30 bytes before col to 50 after.
func around(s string, col int) string {
	return s[max(0, min(col-30, len(s))):min(len(s), col+50)]
}

// firstLastLines keeps the first and last line of an NDJSON stream and the
// number of lines.
func firstLastLines(body []byte) []byte {
	lines := strings.Split(strings.TrimSuffix(string(body), "\n"), "\n")
	return fmt.Appendf(nil, "lines: %d\nfirst: %s\nlast: %s\n", len(lines), lines[0], lines[len(lines)-1])
}

// normaliser replaces the volatile values of a response (rules at the top
// of this file).
type normaliser struct {
	literals []string         // old, new pairs
	times    map[int64]string // unix ms of fixture times → label
	// hourStrings are extra request-path literals (hour query values
	// that are not fixture hours) → label.
	hourStrings map[string]string
	secs        map[int64]string  // unix seconds of fixture hours → label
	keyed       []*regexp.Regexp  // rule 3, 4, 7 patterns
	repl        map[string]string // pattern → replacement
}

var (
	reJobID   = regexp.MustCompile(`\b[0-9a-f]{16}\b`)
	reRollout = regexp.MustCompile(`\bro-[0-9a-f]{12}\b`)
	reRFC3339 = regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)`)
	reUnix    = regexp.MustCompile(`\b1\d{9}(\d{3})?\b`)
	reKeyed   = []struct {
		re   *regexp.Regexp
		repl string
	}{
		{regexp.MustCompile(`"batchId":"[^"]*"`), `"batchId":"<batch-id>"`},
		{regexp.MustCompile(`("dataSource":"[a-z0-9-]+","version":)\d+`), `${1}<snapshot-version>`},
		{regexp.MustCompile(`"ageSeconds":\d+`), `"ageSeconds":<age>`},
		{regexp.MustCompile(`"activeActors":\d+`), `"activeActors":<actors>`}, // actors sleep after a minute idle
		{regexp.MustCompile(`"(durationMs|elapsedMs)":\d+`), `"${1}":<ms>`},
		{regexp.MustCompile(`"bytes":[1-9]\d*`), `"bytes":<bytes>`},
	}
)

// newNormaliser knows the data dir, the node id and the fixture's times.
func newNormaliser(dataDir, nodeID string, events []time.Time, hours []int64) *normaliser {
	n := &normaliser{
		literals: []string{dataDir, "<data-dir>", nodeID, "<node>"},
		times:    map[int64]string{},
		secs:     map[int64]string{},
	}
	for k, h := range hours {
		label := fmt.Sprintf("<hour%d>", k)
		n.secs[h] = label
		n.times[h*1000] = label
	}
	for i, t := range events {
		n.times[t.UnixMilli()] = fmt.Sprintf("<t%d>", i)
	}
	return n
}

// requestPath normalises a request path: the fixture hours as query
// values ("2006-01-02T15") → <hourK>, then the rules of apply.
func (n *normaliser) requestPath(p string) string {
	for h, label := range n.secs {
		p = strings.ReplaceAll(p, time.Unix(h, 0).UTC().Format("2006-01-02T15"), label)
	}
	for v, label := range n.hourStrings {
		p = strings.ReplaceAll(p, v, label)
	}
	return string(n.apply([]byte(p)))
}

// apply normalises b.
func (n *normaliser) apply(b []byte) []byte {
	s := string(b)
	for i := 0; i+1 < len(n.literals); i += 2 {
		if n.literals[i] != "" {
			s = strings.ReplaceAll(s, n.literals[i], n.literals[i+1])
		}
	}
	s = reJobID.ReplaceAllString(s, "<job-id>")
	s = reRollout.ReplaceAllString(s, "<rollout-id>")
	for _, k := range reKeyed {
		s = k.re.ReplaceAllString(s, k.repl)
	}
	s = reRFC3339.ReplaceAllStringFunc(s, func(v string) string {
		t, err := time.Parse(time.RFC3339Nano, v)
		if label, ok := n.times[t.UnixMilli()]; err == nil && ok {
			return label
		}
		return "<time>"
	})
	s = reUnix.ReplaceAllStringFunc(s, func(v string) string {
		x, _ := strconv.ParseInt(v, 10, 64)
		if len(v) == 13 {
			if label, ok := n.times[x]; ok {
				return label
			}
			return "<unix-ms>"
		}
		if label, ok := n.secs[x]; ok {
			return label
		}
		return "<unix>"
	})
	return []byte(s)
}

// goldenFixture is the deterministic data set: events at fixed offsets in
// two closed hours of the default window (3 and 2 hours before the
// current one), so the snapshot, SQL, legacy and comparison agree.
type goldenFixture struct {
	hours  []int64     // hour0, hour1 (unix seconds)
	times  []time.Time // event times, index = label <tN>
	first  []map[string]any
	second []map[string]any
}

func newGoldenFixture(now time.Time) goldenFixture {
	cur := pathstats.HourBucket(now)
	h0, h1 := cur-3*3600, cur-2*3600
	at := func(h int64, min int) time.Time { return time.Unix(h+int64(min)*60, 0).UTC() }
	f := goldenFixture{hours: []int64{h0, h1}}
	f.times = []time.Time{at(h0, 5), at(h0, 6), at(h1, 1), at(h1, 2), at(h1, 3), at(h1, 4)}
	ms := func(i int) int64 { return f.times[i].UnixMilli() }
	f.first = []map[string]any{
		{"timestamp": ms(0), "path": "/api/users/42", "method": "GET", "status": 200, "latencyMs": 12, "proxyId": "main"},
		{"timestamp": ms(1), "path": "/api/users/43", "method": "GET", "status": 500, "latencyMs": 250, "proxyId": "main"},
		{"timestamp": ms(2), "path": "/api/orders", "method": "POST", "status": 201, "latencyMs": 30, "proxyId": "main"},
		{"timestamp": ms(3), "path": "/api/orders", "method": "POST", "status": 404, "latencyMs": 5, "proxyId": "main"},
	}
	f.second = []map[string]any{
		{"timestamp": f.times[4].Format(time.RFC3339), "path": "/static/app.js", "status": 200, "latencyMs": 1, "proxyId": "cdn"},
		{"timestamp": f.times[5].Format(time.RFC3339), "path": "/api/orders", "method": "GET", "status": 200, "latencyMs": 40, "proxyId": "main"},
	}
	return f
}

// jsonArray renders events as a JSON array body.
func jsonArray(events []map[string]any) []byte {
	return append([]byte("["), append(bytes.ReplaceAll(bytes.TrimSpace(ndjson(events...)), []byte("\n"), []byte(",")), ']')...)
}

// startGolden starts a server for golden recording and its normaliser.
func startGolden(t *testing.T, f goldenFixture, args ...string) *golden {
	t.Helper()
	return startGoldenIn(t, t.TempDir(), f.times, f.hours, args...)
}

// startGoldenIn starts a server on dir; hours and times are labelled by
// their index (<hourK>, <tN>).
func startGoldenIn(t *testing.T, dir string, times []time.Time, hours []int64, args ...string) *golden {
	t.Helper()
	c := startServe(t, dir, append([]string{"--snapshot-interval", "1s", "--legacy", "on"}, args...)...)
	node, err := os.ReadFile(filepath.Join(dir, "node-id"))
	if err != nil {
		t.Fatal(err)
	}
	return &golden{t: t, c: c, norm: newNormaliser(dir, strings.TrimSpace(string(node)), times, hours)}
}

// TestGolden records every admin endpoint's success and error answers
// from the real server and compares them with testdata/golden.
func TestGolden(t *testing.T) {
	f := newGoldenFixture(time.Now())
	g := startGolden(t, f)

	goldenOpen(g)
	goldenPathConfigs(g)
	goldenMigrationConfig(g)
	goldenIngest(g, f)
	waitGoldenData(t, g.c)
	goldenPaths(g)
	goldenCompare(g)
	goldenLegacy(g)
	goldenArchive(g, f)
	goldenRollout(g)
	goldenCleanup(g)

	// A second server: decommission, then the legacy endpoints are gone.
	goldenDecommission(startGolden(t, f))
	// A third with archived hours; a fourth whose queue goes away.
	goldenArchived(t, f)
	goldenQueueDown(t, f)
}

// goldenOpen: unauthenticated endpoints, auth, unknown routes and methods.
func goldenOpen(g *golden) {
	g.check(goldenReq{name: "healthz", method: "GET", path: "/healthz", noAuth: true})
	g.check(goldenReq{name: "readyz", method: "GET", path: "/readyz", noAuth: true})
	code, _ := g.check(goldenReq{name: "metrics", method: "GET", path: "/metrics", noAuth: true,
		shape: func([]byte) []byte { return []byte("<prometheus text, not pinned>\n") }})
	if code != http.StatusOK {
		g.t.Errorf("/metrics: %d", code)
	}
	g.check(goldenReq{name: "dashboard", method: "GET", path: "/", noAuth: true})
	g.check(goldenReq{name: "401-missing-token", method: "GET", path: "/api/admin/paths-v2", noAuth: true})
	g.check(goldenReq{name: "401-wrong-token", method: "GET", path: "/api/admin/paths-v2", noAuth: true,
		hdr: map[string]string{"Authorization": "Bearer wrong"}})
	g.check(goldenReq{name: "404-unknown-route", method: "GET", path: "/api/admin/nope"})
	g.check(goldenReq{name: "404-unknown-public-route", method: "GET", path: "/nope", noAuth: true})
	g.check(goldenReq{name: "405-method", method: "DELETE", path: "/api/admin/paths-v2"})
}

// goldenPathConfigs: put, list, get one, delete, and their errors.
func goldenPathConfigs(g *golden) {
	put := func(name, body string) {
		g.check(goldenReq{name: name, method: "PUT", path: "/api/admin/path-configs", ctype: "application/json", body: []byte(body)})
	}
	put("path-configs-put", `{"path":"/api/orders","cache":{"enabled":true,"ttlSeconds":60},"rateLimit":{"enabled":true,"requestsPerMinute":600},"geo":{"enabled":true,"allow":["DE","FR"]}}`)
	put("400-path-configs-put-no-path", `{"cache":{"enabled":false}}`)
	g.check(goldenReq{name: "path-configs-put-query-path", method: "PUT", path: "/api/admin/path-configs?path=/static/app.js",
		ctype: "application/json", body: []byte(`{"geo":{"enabled":true,"deny":["XX"]}}`)})
	put("path-configs-put-temp", `{"path":"/tmp/gone","cache":{"enabled":true}}`)
	put("400-path-configs-cache-type", `{"path":"/a","cache":true}`)
	put("400-path-configs-unknown-field", `{"path":"/a","colour":"red"}`)
	put("400-path-configs-trailing", `{"path":"/a"} x`)
	put("400-path-configs-control-char", `{"path":"/a\u0000b"}`)
	g.check(goldenReq{name: "path-configs-list", method: "GET", path: "/api/admin/path-configs"})
	g.check(goldenReq{name: "path-configs-get", method: "GET", path: "/api/admin/path-configs?path=/api/orders"})
	g.check(goldenReq{name: "404-path-configs-get", method: "GET", path: "/api/admin/path-configs?path=/none"})
	g.check(goldenReq{name: "400-path-configs-get-control-char", method: "GET", path: "/api/admin/path-configs?path=/a%01b"})
	g.check(goldenReq{name: "path-configs-delete", method: "DELETE", path: "/api/admin/path-configs?path=/tmp/gone"})
	g.check(goldenReq{name: "404-path-configs-delete", method: "DELETE", path: "/api/admin/path-configs?path=/tmp/gone"})
}

// goldenMigrationConfig: get, put (ETag), the 412 and the 400s, history.
// The percentage stays 0, so /paths answers from the legacy system.
func goldenMigrationConfig(g *golden) {
	const p = "/api/admin/paths/migration-config"
	g.check(goldenReq{name: "migration-config-get-default", method: "GET", path: p})
	put := func(name, body string, hdr map[string]string) {
		g.check(goldenReq{name: name, method: "PUT", path: p, ctype: "application/json", body: []byte(body), hdr: hdr})
	}
	put("migration-config-put", `{"forceNewAPIIPs":["10.1.0.0/16","::ffff:10.2.0.1"],"forceOldAPIIPs":["192.0.2.7"]}`, map[string]string{"If-Match": "0"})
	put("migration-config-put-quoted-if-match", `{"forceOldAPIIPs":["192.0.2.7","2001:db8::/32"]}`, map[string]string{"If-Match": `"1"`})
	put("412-migration-config-stale", `{"newAPIPercentage":5}`, map[string]string{"If-Match": "1"})
	put("400-migration-config-percentage", `{"newAPIPercentage":150}`, nil)
	put("400-migration-config-bad-ip", `{"forceOldAPIIPs":["10.0.0.1","nope"]}`, nil)
	put("400-migration-config-unknown-field", `{"colour":"red"}`, nil)
	put("400-migration-config-not-json", `newAPIPercentage=5`, nil)
	g.check(goldenReq{name: "migration-config-get", method: "GET", path: p})
	g.check(goldenReq{name: "migration-config-history", method: "GET", path: p + "/history"})
}

// goldenIngest: the fixture (JSON with a key, its duplicate, NDJSON) and
// every ingest error.
func goldenIngest(g *golden, f goldenFixture) {
	const p = "/api/v1/events"
	key := map[string]string{"Idempotency-Key": "golden-1"}
	ingest := func(name, ctype string, body []byte, hdr map[string]string) int {
		code, _ := g.check(goldenReq{name: name, method: "POST", path: p, ctype: ctype, body: body, hdr: hdr})
		return code
	}
	if code := ingest("ingest-json", "application/json", jsonArray(f.first), key); code != http.StatusAccepted {
		g.t.Fatalf("ingest: %d", code)
	}
	ingest("ingest-duplicate", "application/json", jsonArray(f.first), key)
	ingest("422-ingest-key-reused", "application/json", jsonArray(f.second), key)
	if code := ingest("ingest-ndjson", "application/x-ndjson", ndjson(f.second...), nil); code != http.StatusAccepted {
		g.t.Fatalf("ingest: %d", code)
	}
	ingest("415-ingest", "text/plain", []byte("hello"), nil)
	ingest("400-ingest-invalid-events", "application/json",
		[]byte(`[{"path":"/a","status":200},{"path":"a","status":99},{"status":200,"latencyMs":-1}]`), nil)
	ingest("400-ingest-trailing", "application/json", []byte(`[{"path":"/a","status":200}] {}`), nil)
	ingest("400-ingest-not-json", "application/json", []byte(`{"path":`), nil)
	ingest("400-ingest-bad-key", "application/json", []byte(`[]`), map[string]string{"Idempotency-Key": "bad\tkey"})
	many := bytes.Repeat([]byte(`{"path":"/a","status":200}`+"\n"), 10001)
	ingest("413-ingest-events", "application/x-ndjson", many, nil)
	ingest("413-ingest-bytes", "application/x-ndjson", bytes.Repeat([]byte(" "), 5<<20+1), nil)
}

// waitGoldenData waits until the snapshot, SQL and the legacy system all
// hold the fixture's 6 requests on 4 paths.
func waitGoldenData(t *testing.T, c *child) {
	t.Helper()
	for _, src := range []struct{ path, source string }{
		{"/api/admin/paths-v2", "kv-snapshot"}, {"/api/admin/paths", "do-legacy"},
	} {
		waitFor(t, 90*time.Second, func() bool {
			code, env := c.do("GET", src.path, "", nil, nil)
			if code != http.StatusOK {
				return false
			}
			meta, _ := env["metadata"].(map[string]any)
			items, _ := env["data"].([]any)
			var sum float64
			for _, it := range items {
				sum += it.(map[string]any)["requestCount"].(float64)
			}
			return meta["dataSource"] == src.source && sum == 6
		}, src.path+" from "+src.source+" with all 6 requests")
	}
}

// goldenPaths: both read paths, their parameters and parameter errors;
// /paths goes to legacy (0 %), and to the new path once this client is
// forced new.
func goldenPaths(g *golden) {
	defer goldenPathsForcedNew(g)
	for _, c := range []struct{ name, query string }{
		{"", ""}, {"-page", "?limit=2&page=2"}, {"-q", "?q=ORD"}, {"-proxy", "?proxyId=cdn"},
		{"-clamped", "?limit=500"}, {"-empty-page", "?page=9"},
	} {
		g.check(goldenReq{name: "paths-v2" + c.name, method: "GET", path: "/api/admin/paths-v2" + c.query})
		g.check(goldenReq{name: "paths-legacy" + c.name, method: "GET", path: "/api/admin/paths" + c.query})
	}
	g.check(goldenReq{name: "400-paths-page", method: "GET", path: "/api/admin/paths-v2?page=0"})
	g.check(goldenReq{name: "400-paths-limit", method: "GET", path: "/api/admin/paths?limit=abc"})
	g.check(goldenReq{name: "400-paths-q-long", method: "GET", path: "/api/admin/paths-v2?q=" + strings.Repeat("x", 257)})
}

// goldenPathsForcedNew forces 127.0.0.1 to the new read path, records
// /paths, and puts the forced list back.
func goldenPathsForcedNew(g *golden) {
	const p = "/api/admin/paths/migration-config"
	g.check(goldenReq{name: "migration-config-force-new", method: "PUT", path: p, ctype: "application/json",
		body: []byte(`{"forceNewAPIIPs":["10.1.0.0/16","10.2.0.1","127.0.0.1"]}`)})
	g.check(goldenReq{name: "paths-routed-new", method: "GET", path: "/api/admin/paths?limit=1"})
	g.check(goldenReq{name: "migration-config-force-new-undo", method: "PUT", path: p, ctype: "application/json",
		body: []byte(`{"forceNewAPIIPs":["10.1.0.0/16","10.2.0.1"]}`)})
}

// goldenCompare: no report yet (404), a drained comparison, the latest one,
// and parameter errors.
func goldenCompare(g *golden) {
	const p = "/api/admin/paths/compare"
	g.check(goldenReq{name: "404-compare-latest", method: "GET", path: p + "/latest"})
	g.check(goldenReq{name: "compare", method: "GET", path: p})
	g.check(goldenReq{name: "compare-latest", method: "GET", path: p + "/latest"})
	g.check(goldenReq{name: "400-compare-window", method: "GET", path: p + "?window=soon"})
	g.check(goldenReq{name: "400-compare-tolerance", method: "GET", path: p + "?tolerance=2"})
}

// goldenLegacy: stats and both export formats.
func goldenLegacy(g *golden) {
	const p = "/api/admin/paths/do"
	waitLegacyFlushed(g.t, g.c)
	g.check(goldenReq{name: "legacy-stats", method: "GET", path: p + "/stats"})
	g.check(goldenReq{name: "legacy-export-json", method: "GET", path: p + "/export?format=json"})
	g.check(goldenReq{name: "legacy-export-ndjson", method: "GET", path: p + "/export?format=ndjson", shape: firstLastLines})
	g.check(goldenReq{name: "400-legacy-export-format", method: "GET", path: p + "/export?format=xml"})
}

// waitLegacyFlushed waits until the legacy write-behind (every 1 s, only
// when actors changed) stored what its actors hold, as storedBytes is read
// from storage: storedBytes the same on two reads 1.5 s apart.
func waitLegacyFlushed(t *testing.T, c *child) {
	t.Helper()
	storedBytes := func() float64 {
		code, env := c.do("GET", "/api/admin/paths/do/stats", "", nil, nil)
		data, _ := env["data"].(map[string]any)
		if code != http.StatusOK || data == nil {
			t.Fatalf("legacy stats: %d %v", code, env)
		}
		n, _ := data["storedBytes"].(float64)
		return n
	}
	waitFor(t, 90*time.Second, func() bool {
		before := storedBytes()
		time.Sleep(1500 * time.Millisecond)
		return before > 0 && storedBytes() == before
	}, "the legacy write-behind to store the fixture")
}

// goldenArchive: the (empty) archive list, a run and a restore as jobs,
// the job list, and the errors.
func goldenArchive(g *golden, f goldenFixture) {
	g.check(goldenReq{name: "archive-list", method: "GET", path: "/api/admin/archive"})
	g.check(goldenReq{name: "400-archive-list-from", method: "GET", path: "/api/admin/archive?from=yesterday"})
	g.check(goldenReq{name: "400-archive-list-range", method: "GET", path: "/api/admin/archive?from=2026-11-02&to=2026-11-01"})
	from := time.Unix(f.hours[0], 0).UTC().Format("2006-01-02T15")
	to := time.Unix(f.hours[1], 0).UTC().Format("2006-01-02T15")
	g.check(goldenReq{name: "400-archive-restore-missing", method: "POST", path: "/api/admin/archive/restore?from=" + from})
	g.check(goldenReq{name: "400-archive-restore-hold", method: "POST", path: "/api/admin/archive/restore?from=" + from + "&to=" + to + "&hold=1ns"})
	g.check(goldenReq{name: "400-job-id", method: "GET", path: "/api/admin/jobs/xyz"})
	g.check(goldenReq{name: "404-job", method: "GET", path: "/api/admin/jobs/0123456789abcdef"})

	run := startGoldenJob(g, "archive-run", "/api/admin/archive/run")
	waitJob(g.t, g.c, run)
	g.check(goldenReq{name: "job-archive-run", method: "GET", path: "/api/admin/jobs/" + run})
	restore := startGoldenJob(g, "archive-restore", "/api/admin/archive/restore?from="+from+"&to="+to+"&hold=1h")
	waitJob(g.t, g.c, restore)
	g.check(goldenReq{name: "job-archive-restore", method: "GET", path: "/api/admin/jobs/" + restore})
	g.check(goldenReq{name: "jobs", method: "GET", path: "/api/admin/jobs"})
	goldenJobStream(g)
}

// goldenJobStream: the NDJSON stream of a run, pinned by its first and
// last lines (the job line has its timing-dependent fields normalised).
func goldenJobStream(g *golden) {
	waitFor(g.t, 60*time.Second, func() bool {
		st, _ := g.try(goldenReq{name: "archive-run-ndjson", method: "POST", path: "/api/admin/archive/run",
			hdr: map[string]string{"Accept": "application/x-ndjson"}, shape: func(b []byte) []byte { return firstLastLines(jobVolatile(b)) }})
		return st != http.StatusConflict
	}, "an archive run stream to start")
}

// startGoldenJob starts a job, waiting while the elected archiver holds
// the lease (409), and records the 202. A job's state in the 202 depends
// on timing, so that record has state, progress, result and finishedAt
// normalised.
func startGoldenJob(g *golden, name, path string) string {
	g.t.Helper()
	var raw []byte
	waitFor(g.t, 60*time.Second, func() bool {
		req := goldenReq{name: name, method: "POST", path: path, shape: jobVolatile}
		var st int
		st, raw = g.try(req)
		return st != http.StatusConflict
	}, name+" to start")
	m := regexp.MustCompile(`"id":"([0-9a-f]{16})"`).FindSubmatch(raw)
	if m == nil {
		g.t.Fatalf("%s: no job id in %s", name, raw)
	}
	return string(m[1])
}

// try is check without recording a 409 (the lease was busy).
func (g *golden) try(r goldenReq) (int, []byte) {
	g.t.Helper()
	req, err := http.NewRequest(r.method, g.c.admin+r.path, nil)
	if err != nil {
		g.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+g.c.token)
	for k, v := range r.hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		g.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusConflict {
		g.compare(r.name, g.record(r, resp, raw))
	}
	return resp.StatusCode, raw
}

var reJobState = []struct {
	re   *regexp.Regexp
	repl string
}{
	{regexp.MustCompile(`"state":"(running|succeeded|failed)"`), `"state":"<state>"`},
	{regexp.MustCompile(`"progress":(null|\{[^{}]*\})`), `"progress":<progress>`},
	{regexp.MustCompile(`"result":(null|\{[^{}]*\})`), `"result":<result>`},
	{regexp.MustCompile(`"finishedAt":(null|"[^"]*")`), `"finishedAt":<finishedAt>`},
}

// jobVolatile normalises the timing-dependent fields of a fresh job.
func jobVolatile(b []byte) []byte {
	for _, r := range reJobState {
		b = r.re.ReplaceAll(b, []byte(r.repl))
	}
	return b
}

// goldenArchived: a server whose elected archiver archived two old hours
// (ingestOldHours: 7 paths / 300 requests and 5 paths / 100 requests,
// labelled <hour2> and <hour3>): the list, a restore job and its record,
// the list after it (a restore moves the parts back into SQL), and 503
// once the archive directory is gone.
func goldenArchived(t *testing.T, f goldenFixture) {
	dir := t.TempDir()
	h1, h2 := ingestOldHours(t, dir)
	g := startGoldenIn(t, dir, f.times, append(slices.Clone(f.hours), h1, h2),
		"--retention", "25h", "--archive-interval", "1h", "--legacy", "off")
	waitArchivedHours(t, g.c, 2)
	g.check(goldenReq{name: "archived-list", method: "GET", path: "/api/admin/archive"})
	from := time.Unix(h1, 0).UTC().Format("2006-01-02T15")
	to := time.Unix(h2+3600, 0).UTC().Format("2006-01-02T15")
	g.norm.hourStrings = map[string]string{to: "<hour3+1h>"}
	g.check(goldenReq{name: "archived-list-range", method: "GET", path: "/api/admin/archive?from=" + time.Unix(h2, 0).UTC().Format("2006-01-02T15")})
	id := startGoldenJob(g, "archived-restore", "/api/admin/archive/restore?from="+from+"&to="+to+"&hold=1h")
	waitJob(t, g.c, id)
	g.check(goldenReq{name: "archived-restore-job", method: "GET", path: "/api/admin/jobs/" + id})
	g.check(goldenReq{name: "archived-list-held", method: "GET", path: "/api/admin/archive"})
	if err := os.RemoveAll(filepath.Join(dir, "archive")); err != nil {
		t.Fatal(err)
	}
	g.check(goldenReq{name: "503-archive-list", method: "GET", path: "/api/admin/archive"})
}

// goldenQueueDown: a server on an external queue that goes away answers
// ingest and /readyz with 503.
func goldenQueueDown(t *testing.T, f goldenFixture) {
	natsSrv := testutil.MustStartNATS(t, -1)
	g := startGolden(t, f, "--queue", natsSrv.ClientURL())
	g.norm.literals = append(g.norm.literals, strings.TrimPrefix(natsSrv.ClientURL(), "nats://"), "<nats-addr>")
	natsSrv.Shutdown()
	g.check(goldenReq{name: "503-ingest-queue-down", method: "POST", path: "/api/v1/events", ctype: "application/x-ndjson",
		body: ndjson(map[string]any{"path": "/x", "status": 200})})
	g.check(goldenReq{name: "503-readyz-queue-down", method: "GET", path: "/readyz", noAuth: true})
}

// goldenRollout: no rollout yet, and the errors of start and abort.
func goldenRollout(g *golden) {
	const p = "/api/admin/paths/migration-config/rollout"
	g.check(goldenReq{name: "404-rollout-state", method: "GET", path: p})
	g.check(goldenReq{name: "400-rollout-start", method: "POST", path: p, ctype: "application/json", body: []byte(`{"steps":"fast"}`)})
	g.check(goldenReq{name: "413-rollout-start", method: "POST", path: p, ctype: "application/json", body: bytes.Repeat([]byte(" "), 64<<10+1)})
	g.check(goldenReq{name: "rollout-abort-none", method: "POST", path: p + "/abort"})
	g.check(goldenReq{name: "400-rollout-abort", method: "POST", path: p + "/abort", ctype: "application/json", body: []byte(`{"why":"x"}`)})
}

// goldenRolloutRun starts a rollout whose first step waits an hour, reads
// its state once that step is applied (nothing moves during the dwell), is refused a second one (409) and aborts it.
func goldenRolloutRun(g *golden) {
	const p = "/api/admin/paths/migration-config/rollout"
	plan := []byte(`{"steps":[10,50,100],"dwell":"1h"}`)
	g.check(goldenReq{name: "rollout-start", method: "POST", path: p, ctype: "application/json", body: plan})
	waitFor(g.t, 60*time.Second, func() bool {
		code, env := g.c.do("GET", p, "", nil, nil)
		data, _ := env["data"].(map[string]any)
		return code == http.StatusOK && data["stepStartedAt"] != nil
	}, "the rollout's first step to be applied")
	g.check(goldenReq{name: "rollout-state", method: "GET", path: p})
	g.check(goldenReq{name: "409-rollout-start", method: "POST", path: p, ctype: "application/json", body: plan})
	g.check(goldenReq{name: "rollout-abort", method: "POST", path: p + "/abort", ctype: "application/json", body: []byte(`{"reason":"golden"}`)})
	g.check(goldenReq{name: "rollout-state-aborted", method: "GET", path: p})
	g.check(goldenReq{name: "rollout-history", method: "GET", path: "/api/admin/paths/migration-config/history"})
}

// goldenCleanup: cleanup is refused while clients are routed to legacy,
// then forced in batches; then legacy reads are empty and a comparison
// reports every path missing_in_do.
func goldenCleanup(g *golden) {
	const p = "/api/admin/paths/do/batch-cleanup"
	g.check(goldenReq{name: "409-legacy-cleanup", method: "POST", path: p})
	g.check(goldenReq{name: "400-legacy-cleanup-batch", method: "POST", path: p + "?force=true&batchSize=0"})
	g.check(goldenReq{name: "400-legacy-cleanup-force", method: "POST", path: p + "?force=maybe"})
	g.check(goldenReq{name: "legacy-cleanup", method: "POST", path: p + "?force=true&batchSize=3"})
	g.check(goldenReq{name: "legacy-export-json-empty", method: "GET", path: "/api/admin/paths/do/export?format=json"})
	g.check(goldenReq{name: "legacy-stats-empty", method: "GET", path: "/api/admin/paths/do/stats"})
	g.check(goldenReq{name: "paths-legacy-after-cleanup", method: "GET", path: "/api/admin/paths"})
	g.check(goldenReq{name: "compare-missing-in-do", method: "GET", path: "/api/admin/paths/compare"})
	g.check(goldenReq{name: "409-legacy-decommission", method: "POST", path: "/api/admin/paths/do/decommission"})
}

// goldenDecommission: at 100 % new the legacy system is decommissioned,
// and its endpoints answer 410 from then on.
func goldenDecommission(g *golden) {
	goldenRolloutRun(g)
	g.check(goldenReq{name: "decommission-set-100", method: "PUT", path: "/api/admin/paths/migration-config",
		ctype: "application/json", body: []byte(`{"newAPIPercentage":100}`)})
	g.check(goldenReq{name: "decommission", method: "POST", path: "/api/admin/paths/do/decommission"})
	for _, c := range []struct{ name, method, path string }{
		{"stats", "GET", "/api/admin/paths/do/stats"},
		{"export", "GET", "/api/admin/paths/do/export?format=json"},
		{"cleanup", "POST", "/api/admin/paths/do/batch-cleanup?force=true"},
		{"decommission", "POST", "/api/admin/paths/do/decommission"},
		{"compare", "GET", "/api/admin/paths/compare"},
		{"compare-latest", "GET", "/api/admin/paths/compare/latest"},
	} {
		g.check(goldenReq{name: "410-" + c.name, method: c.method, path: c.path})
	}
}
