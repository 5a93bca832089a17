package api

import (
	"context"
	"encoding/json"
	"errors"
	"github.com/pathstats/pathstats/internal/testutil"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/pathstats/pathstats"
)

// TestIngestRejectsControlCharsInPath: a path holding NUL or another
// control character is an invalid event (field path), in both formats, and
// nothing is enqueued.
func TestIngestRejectsControlCharsInPath(t *testing.T) {
	for _, path := range []string{`/a\u0000b`, `/a\u001fb`, `/a\tb`, `/a\u007fb`, "/a\x7fb"} {
		for _, format := range []struct{ ctype, body string }{
			{"application/json", `[{"path":"/ok","status":200},{"path":"` + path + `","status":200}]`},
			{"application/x-ndjson", `{"path":"/ok","status":200}` + "\n" + `{"path":"` + path + `","status":200}`},
		} {
			q := &memQueue{}
			w := post(t, newTestIngest(q), format.ctype, format.body)
			body := wantError(t, w, http.StatusBadRequest, pathstats.EInvalidBody)
			if len(body.Details) != 1 || body.Details[0].Index != 1 || body.Details[0].Field != "path" ||
				!strings.Contains(body.Details[0].Reason, "control characters") {
				t.Errorf("%s %q: details %+v", format.ctype, path, body.Details)
			}
			if n := q.events(); n != 0 {
				t.Errorf("%s %q: %d events enqueued", format.ctype, path, n)
			}
		}
	}
}

// TestIngestTrailingData: anything after the JSON array is 400.
func TestIngestTrailingData(t *testing.T) {
	for _, body := range []string{`[{"path":"/a","status":200}] x`, `[] []`, `[{"path":"/a","status":200}]]`, `[{"path":"/a","status":200}] {}`} {
		q := &memQueue{}
		w := post(t, newTestIngest(q), "application/json", body)
		got := wantError(t, w, http.StatusBadRequest, pathstats.EInvalidBody)
		if !strings.Contains(got.Message, "after the JSON array") || q.events() != 0 {
			t.Errorf("%q: %+v, %d events", body, got, q.events())
		}
	}
}

// memConfigs is a PathConfigStore in memory.
type memConfigs struct {
	mu   sync.Mutex
	byID map[string]pathstats.PathConfig
}

func (m *memConfigs) ListPathConfigs(context.Context) ([]pathstats.PathConfig, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []pathstats.PathConfig
	for _, c := range m.byID {
		out = append(out, c)
	}
	return out, nil
}

func (m *memConfigs) PutPathConfig(_ context.Context, c pathstats.PathConfig) (pathstats.PathConfig, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.byID == nil {
		m.byID = map[string]pathstats.PathConfig{}
	}
	m.byID[c.Path] = c
	return c, nil
}

func (m *memConfigs) DeletePathConfig(_ context.Context, path string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.byID[path]; !ok {
		return pathstats.ErrNotFound
	}
	delete(m.byID, path)
	return nil
}

// configRequest sends one request to the path-config handlers.
func configRequest(store pathstats.PathConfigStore, method, query, body string) *httptest.ResponseRecorder {
	mux := http.NewServeMux()
	for pattern, h := range PathConfigHandlers(store) {
		mux.Handle(pattern, h)
	}
	r := httptest.NewRequest(method, "/api/admin/path-configs"+query, strings.NewReader(body))
	if body != "" {
		r.Header.Set("Content-Type", "application/json")
	}
	w := httptest.NewRecorder()
	mux.ServeHTTP(w, r)
	return w
}

// TestPathConfigBadInput: each bad request names the field and the rule,
// never a Go type, and echoes at most 64 bytes of input.
func TestPathConfigBadInput(t *testing.T) {
	long := strings.Repeat("Z", 300)
	for _, tc := range []struct {
		method, query, body string
		code, want          string
	}{
		{"PUT", "", `{"path":"/a","cache":"yes"}`, pathstats.EInvalidBody, "cache: must be an object"},
		{"PUT", "", `{"path":"/a","cache":{"ttlSeconds":"60"}}`, pathstats.EInvalidBody, "cache.ttlSeconds: must be an integer"},
		{"PUT", "", `{"path":"/a","geo":{"allow":"US"}}`, pathstats.EInvalidBody, "geo.allow: must be an array of strings"},
		{"PUT", "", `{"path":"/a","geo":{"deny":["` + long + `"]}}`, pathstats.EInvalidBody, `geo.deny[0]: "ZZZZ`},
		{"PUT", "", `{"path":"/a","` + long + `":1}`, pathstats.EInvalidBody, "unknown field"},
		{"PUT", "", `{"path":5}`, pathstats.EInvalidBody, "path: must be a string"},
		{"PUT", "", `{"path":"/a"} x`, pathstats.EInvalidBody, "unexpected data after the JSON value"},
		{"PUT", "", `{"path":"/a"} }`, pathstats.EInvalidBody, "unexpected data after the JSON value"},
		{"PUT", "", `{"path":"/a"}{"path":"/b"}`, pathstats.EInvalidBody, "unexpected data after the JSON value"},
		{"PUT", "", `{"path":"/a\u0000b"}`, pathstats.EInvalidBody, "path: must not contain control characters"},
		{"PUT", "", `{"path":"/a\u007f"}`, pathstats.EInvalidBody, "path: must not contain control characters"},
		{"PUT", "?path=" + url.QueryEscape("/a\x00b"), `{}`, pathstats.EInvalidParameter, "path: must not contain control characters"},
		{"PUT", "?path=" + url.QueryEscape("/a\nb"), `{}`, pathstats.EInvalidParameter, "path: must not contain control characters"},
		{"GET", "?path=" + url.QueryEscape("/a\x00b"), ``, pathstats.EInvalidParameter, "path: must not contain control characters"},
		{"DELETE", "?path=" + url.QueryEscape("/a\x01"), ``, pathstats.EInvalidParameter, "path: must not contain control characters"},
		{"DELETE", "", `{"path":"/a\u0001"}`, pathstats.EInvalidBody, "path: must not contain control characters"},
		{"GET", "?path=" + url.QueryEscape("/"+long), ``, pathstats.ENotFound, `no config for path "/ZZZ`},
	} {
		w := configRequest(&memConfigs{}, tc.method, tc.query, tc.body)
		got := wantError(t, w, pathstats.HTTPStatus(tc.code), tc.code)
		if !strings.Contains(got.Message, tc.want) {
			t.Errorf("%s %s %.40q: message %q, want it to contain %q", tc.method, tc.query, tc.body, got.Message, tc.want)
		}
		checkSafeMessage(t, got.Message, tc.query+tc.body)
	}
	// The percent-encoded form the gateway records is a valid path.
	if w := configRequest(&memConfigs{}, "PUT", "", `{"path":"/a%00b"}`); w.Code != http.StatusOK {
		t.Fatalf("escaped path: %d %s", w.Code, w.Body)
	}
}

// checkSafeMessage fails when msg names a Go type or package, or repeats
// more than 64 bytes of input (plus the quotes around it).
func checkSafeMessage(t *testing.T, msg, input string) {
	t.Helper()
	for _, leak := range []string{"Go struct", "Go value", "pathstats.", "api.", "json:", "/tmp"} {
		if strings.Contains(msg, leak) {
			t.Errorf("message %q contains %q", msg, leak)
		}
	}
	if n := testutil.LongestCommonRun(msg, input); n > 64+2 {
		t.Errorf("message %q repeats %d bytes of the input", msg, n)
	}
}

// FuzzPathConfigInput: any PUT body and ?path= give 200 with a valid stored
// path or a 4xx with a safe message; never a 500.
func FuzzPathConfigInput(f *testing.F) {
	f.Add("", `{"path":"/a","cache":{"enabled":true,"ttlSeconds":60}}`)
	f.Add("/a%00", `{}`)
	f.Add("", `{"path":"/a\u0000","geo":{"allow":["US"],"deny":[1]}}`)
	f.Add("/x", `{"path":"/a"} {}`)
	f.Add("", `{"rateLimit":{"requestsPerMinute":1e99}}`)
	f.Fuzz(func(t *testing.T, query, body string) {
		store := &memConfigs{}
		w := configRequest(store, "PUT", "?path="+url.QueryEscape(query), body)
		switch {
		case w.Code == http.StatusOK:
			for _, c := range store.byID {
				if err := validConfigPath(c.Path, pathstats.EInvalidBody); err != nil {
					t.Fatalf("stored %q: %v", c.Path, err)
				}
			}
		case w.Code >= 500:
			t.Fatalf("status %d: %s", w.Code, w.Body)
		default:
			var got testErrorBody
			if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil || got.Error == "" {
				t.Fatalf("status %d, body %q", w.Code, w.Body)
			}
			checkSafeMessage(t, got.Message, query+body)
		}
	})
}

// TestReadyzMasksPaths: a failing check's text names no file system path.
func TestReadyzMasksPaths(t *testing.T) {
	for _, tc := range []struct{ err, want string }{
		{"open /tmp/TestX123/001/pathstats.db: permission denied", "open <path>: permission denied"},
		{`archive: stat "/var/lib/pathstats/archive/2025": no such file`, `archive: stat "<path>": no such file`},
		{"blob (file:///srv/data/archive): not found", "blob (file://<path>): not found"},
		{"/data/x.db is locked", "<path> is locked"},
		{"dial tcp 127.0.0.1:5432: connection refused", "dial tcp 127.0.0.1:5432: connection refused"},
		{"nats://10.0.0.1:4222/x: timeout", "nats://10.0.0.1:4222/x: timeout"},
	} {
		if got := checkMessage(errors.New(tc.err)); got != tc.want {
			t.Errorf("%q: %q, want %q", tc.err, got, tc.want)
		}
	}
}
