package main

import (
	"bufio"
	"fmt"
	"github.com/pathstats/pathstats/internal/testutil"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

// badRequest is one bad request against the running server and the answer
// it must get.
type badRequest struct {
	name, method, path, ctype, body string
	status                          int
	code                            string
	field                           string // the message must name it
}

// TestBadInputAnswers sends bad requests to the real server: each gets the
// documented status and code, and a message that names the field and holds
// no Go type name, no file system path and at most ~64 bytes of the input.
func TestBadInputAnswers(t *testing.T) {
	dir := t.TempDir()
	c := startServe(t, dir)
	const js, nd = "application/json", "application/x-ndjson"
	long := strings.Repeat("Z", 300)
	cfgs, mig, roll := "/api/admin/path-configs", "/api/admin/paths/migration-config", "/api/admin/paths/migration-config/rollout"
	for _, b := range []badRequest{
		// Decoder errors name the field, not the Go type.
		{"config cache type", "PUT", cfgs, js, `{"path":"/a","cache":"yes"}`, 400, "INVALID_BODY", "cache"},
		{"config ttl type", "PUT", cfgs, js, `{"path":"/a","cache":{"ttlSeconds":"60"}}`, 400, "INVALID_BODY", "cache.ttlSeconds"},
		{"config geo type", "PUT", cfgs, js, `{"path":"/a","geo":{"allow":"US"}}`, 400, "INVALID_BODY", "geo.allow"},
		{"config long unknown field", "PUT", cfgs, js, `{"path":"/a","` + long + `":1}`, 400, "INVALID_BODY", "unknown field"},
		{"config long country code", "PUT", cfgs, js, `{"path":"/a","geo":{"deny":["` + long + `"]}}`, 400, "INVALID_BODY", "geo.deny[0]"},
		{"rollout steps type", "POST", roll, js, `{"steps":"x","dwell":"1m"}`, 400, "INVALID_BODY", "steps"},
		{"rollout long dwell", "POST", roll, js, `{"steps":[10],"dwell":"` + long + `"}`, 400, "INVALID_BODY", "dwell"},
		{"rollout gate type", "POST", roll, js, `{"steps":[10],"dwell":"1m","gates":{"maxP99Ms":"fast"}}`, 400, "INVALID_BODY", "gates.maxP99Ms"},
		{"abort reason type", "POST", roll + "/abort", js, `{"reason":5}`, 400, "INVALID_BODY", "reason"},
		{"migration list type", "PUT", mig, js, `{"forceNewAPIIPs":"10.0.0.1"}`, 400, "INVALID_BODY", "forceNewAPIIPs"},
		{"migration percentage type", "PUT", mig, js, `{"newAPIPercentage":"5"}`, 400, "INVALID_PERCENTAGE", "newAPIPercentage"},
		{"migration long entry", "PUT", mig, js, `{"forceOldAPIIPs":["` + long + `"]}`, 400, "INVALID_BODY", "forceOldAPIIPs[0]"},
		// Trailing data after a JSON body.
		{"config trailing brace", "PUT", cfgs, js, `{"path":"/a"} }`, 400, "INVALID_BODY", "after the JSON value"},
		{"config trailing bracket", "PUT", cfgs, js, `{"path":"/a"}]`, 400, "INVALID_BODY", "after the JSON value"},
		{"config two objects", "PUT", cfgs, js, `{"path":"/a"} {"path":"/b"}`, 400, "INVALID_BODY", "after the JSON value"},
		{"migration trailing", "PUT", mig, js, `{"newAPIPercentage":5} x`, 400, "INVALID_BODY", "after the JSON value"},
		{"rollout trailing", "POST", roll, js, `{"steps":[10],"dwell":"1m"} {}`, 400, "INVALID_BODY", "after the JSON value"},
		{"ingest trailing", "POST", "/api/v1/events", js, `[{"path":"/a","status":200}] x`, 400, "INVALID_BODY", "after the JSON array"},
		{"ingest two arrays", "POST", "/api/v1/events", js, `[] []`, 400, "INVALID_BODY", "after the JSON array"},
		// NUL and control characters in paths.
		{"ingest NUL", "POST", "/api/v1/events", js, `[{"path":"/a\u0000b","status":200}]`, 400, "INVALID_BODY", "invalid"},
		{"ingest DEL ndjson", "POST", "/api/v1/events", nd, `{"path":"/x\u007f","status":200}`, 400, "INVALID_BODY", "invalid"},
		{"config body NUL", "PUT", cfgs, js, `{"path":"/a\u0000b"}`, 400, "INVALID_BODY", "path"},
		{"config body newline", "PUT", cfgs, js, `{"path":"/a\nb"}`, 400, "INVALID_BODY", "path"},
		{"config query NUL", "PUT", cfgs + "?path=" + url.QueryEscape("/a\x00b"), js, `{}`, 400, "INVALID_PARAMETER", "path"},
		{"config get NUL", "GET", cfgs + "?path=" + url.QueryEscape("/a\x00"), "", ``, 400, "INVALID_PARAMETER", "path"},
		{"config delete control", "DELETE", cfgs + "?path=" + url.QueryEscape("/a\x01"), "", ``, 400, "INVALID_PARAMETER", "path"},
		// IPv4-mapped prefix shorter than /96: refused, not stored as ::/80.
		{"migration mapped /80", "PUT", mig, js, `{"forceOldAPIIPs":["::ffff:10.0.0.0/80"]}`, 400, "INVALID_BODY", "forceOldAPIIPs[0]"},
	} {
		code, out := c.do(b.method, b.path, b.ctype, []byte(b.body), nil)
		msg, _ := out["message"].(string)
		if code != b.status || out["error"] != b.code {
			t.Errorf("%s: %d %v %q, want %d %s", b.name, code, out["error"], msg, b.status, b.code)
			continue
		}
		if !strings.Contains(msg, b.field) {
			t.Errorf("%s: message %q does not name %q", b.name, msg, b.field)
		}
		checkErrorMessage(t, b.name, msg, b.path+b.body, dir)
	}
	checkIngestPathDetail(t, c)
}

// checkErrorMessage fails when msg names a Go type or package, holds a file
// system path or repeats more than 64 bytes of input (quotes aside).
func checkErrorMessage(t *testing.T, name, msg, input, dataDir string) {
	t.Helper()
	for _, leak := range []string{"Go struct", "Go value", "pathstats.", "json:", "/tmp", dataDir} {
		if strings.Contains(msg, leak) {
			t.Errorf("%s: message %q contains %q", name, msg, leak)
		}
	}
	if n := testutil.LongestCommonRun(msg, input); n > 64+2 {
		t.Errorf("%s: message %q repeats %d bytes of the input", name, msg, n)
	}
}

// checkIngestPathDetail: an event with a NUL in its path is listed with
// field path and a reason naming control characters.
func checkIngestPathDetail(t *testing.T, c *child) {
	t.Helper()
	body := `[{"path":"/ok","status":200},{"path":"/a\u0000b","status":200}]`
	code, out := c.do("POST", "/api/v1/events", "application/json", []byte(body), nil)
	details, _ := out["details"].([]any)
	if code != 400 || len(details) != 1 {
		t.Fatalf("NUL path: %d %v", code, out)
	}
	d, _ := details[0].(map[string]any)
	if d["index"] != float64(1) || d["field"] != "path" || !strings.Contains(fmt.Sprint(d["reason"]), "control characters") {
		t.Fatalf("NUL path detail: %v", d)
	}
}

// TestGatewayEscapesControlChars: a request for /a%00b through the real
// gateway is recorded as "/a%00b" (never with a raw NUL), a raw control
// byte in the request line is refused with 400 and not recorded, and the
// recorded form is a valid path-config path.
func TestGatewayEscapesControlChars(t *testing.T) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer upstream.Close()
	dir := t.TempDir()
	c := startServe(t, dir, "--upstream", upstream.URL)
	for _, p := range []string{"/a%00b", "/a%00b", "/t%09x%7F"} {
		resp, err := http.Get(c.gateway + p)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s: %d", p, resp.StatusCode)
		}
	}
	if got := rawRequestStatus(t, strings.TrimPrefix(c.gateway, "http://"), "/raw\x01ctl"); got != 400 {
		t.Fatalf("raw control byte: %d, want 400", got)
	}
	if code, out := c.do("PUT", "/api/admin/path-configs", "application/json", []byte(`{"path":"/a%00b"}`), nil); code != 200 {
		t.Fatalf("config for the recorded form: %d %v", code, out)
	}
	c.stop()
	tot := sqlTotals(t, dir)
	if got := tot["default /a%00b"]; got.Requests != 2 {
		t.Errorf("/a%%00b: %+v", got)
	}
	if got := tot["default /t%09x%7F"]; got.Requests != 1 {
		t.Errorf("/t%%09x%%7F: %+v", got)
	}
	for key := range tot {
		if strings.IndexFunc(key, func(r rune) bool { return r < 0x20 || r == 0x7f }) >= 0 || strings.Contains(key, "raw") {
			t.Errorf("recorded %q", key)
		}
	}
	if len(tot) != 2 {
		t.Errorf("rows %v", tot)
	}
}

// rawRequestStatus sends a GET whose request line holds target verbatim.
func rawRequestStatus(t *testing.T, addr, target string) int {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", target)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestMappedCIDRInMigrationConfig: IPv4-mapped entries are stored as IPv4
// and match IPv4 clients whether they are seen as 10.0.0.1 or
// ::ffff:10.0.0.1, and no IPv6 client; a mapped prefix shorter than /96 is
// refused.
func TestMappedCIDRInMigrationConfig(t *testing.T) {
	c := startServe(t, t.TempDir(), "--trusted-proxies", "::ffff:127.0.0.0/104", "--client-ip-header", "X-Forwarded-For")
	out := putConfig(t, c, `{"forceNewAPIIPs":["::ffff:10.0.0.0/104"],"forceOldAPIIPs":["::ffff:192.0.2.7"]}`)
	data, _ := out["data"].(map[string]any)
	if fmt.Sprint(data["forceNewAPIIPs"]) != "[10.0.0.0/8]" || fmt.Sprint(data["forceOldAPIIPs"]) != "[192.0.2.7]" {
		t.Fatalf("stored %v", data)
	}
	code, bad := c.do("PUT", "/api/admin/paths/migration-config", "application/json", []byte(`{"forceNewAPIIPs":["::ffff:10.0.0.0/80"]}`), nil)
	if msg, _ := bad["message"].(string); code != 400 || bad["error"] != "INVALID_BODY" || !strings.Contains(msg, "/96") {
		t.Fatalf("mapped /80: %d %v", code, bad)
	}
	want := map[string]string{
		"10.0.0.1": "forced-new", "::ffff:10.0.0.1": "forced-new", "10.255.0.9": "forced-new",
		"192.0.2.7": "forced-old", "::ffff:192.0.2.7": "forced-old",
		"11.0.0.1": "percentage", "2001:db8::1": "percentage", "::a00:1": "percentage", "::1": "percentage",
	}
	clients := make([]string, 0, len(want))
	for ip := range want {
		clients = append(clients, ip)
	}
	slices.Sort(clients)
	waitFor(t, 60*time.Second, func() bool { return routeFor(t, c, "10.0.0.1") == "forced-new" }, "the config to reach the router")
	for _, ip := range clients {
		if got := routeFor(t, c, ip); got != want[ip] {
			t.Errorf("client %s: %s, want %s", ip, got, want[ip])
		}
	}
}

// routeFor asks GET /api/admin/paths as client ip (through the trusted
// loopback proxy) and returns the route reason.
func routeFor(t *testing.T, c *child, ip string) string {
	t.Helper()
	req, _ := http.NewRequest("GET", c.admin+"/api/admin/paths?limit=1", nil)
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("X-Forwarded-For", ip)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("/paths as %s: %d", ip, resp.StatusCode)
	}
	return resp.Header.Get("X-Pathstats-Route")
}
