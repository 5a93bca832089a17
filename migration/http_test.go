package migration

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/pathstats/pathstats"
)

// cfgMux serves the Store's handlers.
func cfgMux(s *Store) *http.ServeMux {
	mux := http.NewServeMux()
	for pattern, h := range Handlers(s) {
		mux.Handle(pattern, h)
	}
	return mux
}

type cfgReply struct {
	status int
	etag   string
	body   struct {
		Success bool            `json:"success"`
		Data    json.RawMessage `json:"data"`
		Error   string          `json:"error"`
		Message string          `json:"message"`
	}
}

func (r cfgReply) config(t *testing.T) pathstats.MigrationConfig {
	t.Helper()
	var c pathstats.MigrationConfig
	if err := json.Unmarshal(r.body.Data, &c); err != nil {
		t.Fatalf("decode config %s: %v", r.body.Data, err)
	}
	return c
}

// cfgDo sends one request; headers are name, value pairs.
func cfgDo(t *testing.T, h http.Handler, method, target, body string, headers ...string) cfgReply {
	t.Helper()
	req := httptest.NewRequest(method, target, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	r := cfgReply{status: rec.Code, etag: rec.Header().Get("ETag")}
	if err := json.Unmarshal(rec.Body.Bytes(), &r.body); err != nil {
		t.Fatalf("%s %s: body %q: %v", method, target, rec.Body.String(), err)
	}
	return r
}

const cfgPath = "/api/admin/paths/migration-config"

func TestPutValidationMatrix(t *testing.T) {
	t.Parallel()
	e := newCfgEnv(t)
	s := NewStore(e.kv, e.hist, quiet(StoreOptions{}))
	mux := cfgMux(s)
	ips := make([]string, MaxListEntries+1)
	for i := range ips {
		ips[i] = fmt.Sprintf(`"10.%d.%d.1"`, i/256, i%256)
	}
	tooMany := `{"forceNewAPIIPs": [` + strings.Join(ips, ",") + `]}`
	cases := []struct {
		name, body, ctype string
		status            int
		code              string
		headers           []string
	}{
		{"negative", `{"newAPIPercentage": -1}`, "", 400, pathstats.EInvalidPercentage, nil},
		{"above 100", `{"newAPIPercentage": 100.001}`, "", 400, pathstats.EInvalidPercentage, nil},
		{"string", `{"newAPIPercentage": "50"}`, "", 400, pathstats.EInvalidPercentage, nil},
		{"null", `{"newAPIPercentage": null}`, "", 400, pathstats.EInvalidPercentage, nil},
		{"NaN", `{"newAPIPercentage": NaN}`, "", 400, pathstats.EInvalidPercentage, nil},
		{"Infinity", `{"newAPIPercentage": Infinity}`, "", 400, pathstats.EInvalidPercentage, nil},
		{"huge", `{"newAPIPercentage": 1e400}`, "", 400, pathstats.EInvalidPercentage, nil},
		{"three decimals", `{"newAPIPercentage": 50.123}`, "", 400, pathstats.EInvalidPercentage, nil},
		{"bool", `{"newAPIPercentage": true}`, "", 400, pathstats.EInvalidPercentage, nil},
		{"bad IP", `{"forceNewAPIIPs": ["10.0.0.256"]}`, "", 400, pathstats.EInvalidBody, nil},
		{"bad CIDR", `{"forceOldAPIIPs": ["10.0.0.0/33"]}`, "", 400, pathstats.EInvalidBody, nil},
		{"zone", `{"forceOldAPIIPs": ["fe80::1%eth0"]}`, "", 400, pathstats.EInvalidBody, nil},
		{"empty entry", `{"forceOldAPIIPs": [""]}`, "", 400, pathstats.EInvalidBody, nil},
		{"10001 IPs", tooMany, "", 400, pathstats.EInvalidBody, nil},
		{"list not array", `{"forceNewAPIIPs": "10.0.0.1"}`, "", 400, pathstats.EInvalidBody, nil},
		{"list null", `{"forceNewAPIIPs": null}`, "", 400, pathstats.EInvalidBody, nil},
		{"list of numbers", `{"forceNewAPIIPs": [1]}`, "", 400, pathstats.EInvalidBody, nil},
		{"comparison string", `{"enableComparison": "true"}`, "", 400, pathstats.EInvalidBody, nil},
		{"unknown field", `{"newApiPercentage": 5}`, "", 400, pathstats.EInvalidBody, nil},
		{"not JSON", `hello`, "", 400, pathstats.EInvalidBody, nil},
		{"truncated", `{"newAPIPercentage": 5`, "", 400, pathstats.EInvalidBody, nil},
		{"array", `[]`, "", 400, pathstats.EInvalidBody, nil},
		{"null body", `null`, "", 400, pathstats.EInvalidBody, nil},
		{"empty body", ``, "", 400, pathstats.EInvalidBody, nil},
		{"trailing data", `{} {}`, "", 400, pathstats.EInvalidBody, nil},
		{"duplicate field", `{"newAPIPercentage": 1, "newAPIPercentage": 2}`, "", 400, pathstats.EInvalidBody, nil},
		{"wrong content type", `{"newAPIPercentage": 5}`, "text/plain", 415, pathstats.EUnsupportedMediaType, nil},
		{"too large", `{"forceNewAPIIPs": ["` + strings.Repeat(" ", 1<<20) + `"]}`, "", 413, pathstats.EPayloadTooLarge, nil},
		{"garbage If-Match", `{"newAPIPercentage": 5}`, "", 400, pathstats.EInvalidParameter, []string{"If-Match", "abc"}},
		{"long actor", `{"newAPIPercentage": 5}`, "", 400, pathstats.EInvalidParameter, []string{headerActor, strings.Repeat("a", 65)}},
	}
	for _, tc := range cases {
		headers := tc.headers
		if tc.ctype != "" {
			headers = append(headers, "Content-Type", tc.ctype)
		}
		r := cfgDo(t, mux, http.MethodPut, cfgPath, tc.body, headers...)
		if r.status != tc.status || r.body.Error != tc.code || r.body.Success || r.body.Message == "" {
			t.Errorf("%s: %d %s (%s), want %d %s", tc.name, r.status, r.body.Error, r.body.Message, tc.status, tc.code)
		}
	}
	if _, err := e.kv.Get(cfgTestCtx(t), pathstats.MigrationConfigKey); !errors.Is(err, pathstats.ErrNotFound) {
		t.Errorf("something was stored: %v", err)
	}
	if _, total, _ := e.hist.ConfigChanges(cfgTestCtx(t), 0, 1); total != 0 {
		t.Errorf("%d history entries after rejected PUTs", total)
	}
	if got := s.Current(); !sameConfig(got, pathstats.DefaultMigrationConfig()) {
		t.Errorf("held config changed: %+v", got)
	}
}

func TestPutMergesAndVersions(t *testing.T) {
	t.Parallel()
	e := newCfgEnv(t)
	mux := cfgMux(NewStore(e.kv, e.hist, quiet(StoreOptions{})))

	r := cfgDo(t, mux, http.MethodGet, cfgPath, "")
	if r.status != 200 || r.etag != `"0"` || !sameConfig(r.config(t), pathstats.DefaultMigrationConfig()) {
		t.Fatalf("initial GET: %d %s %s", r.status, r.etag, r.body.Data)
	}
	r = cfgDo(t, mux, http.MethodPut, cfgPath, `{"newAPIPercentage": 50.12}`, headerActor, "alice", headerReason, "canary start")
	if c := r.config(t); r.status != 200 || r.etag != `"1"` || c.NewAPIPercentage != 50.12 || c.Version != 1 || c.UpdatedAt == "" {
		t.Fatalf("PUT percentage: %d %s %s", r.status, r.etag, r.body.Data)
	}
	r = cfgDo(t, mux, http.MethodPut, cfgPath,
		`{"forceNewAPIIPs": ["10.0.0.1", "10.0.0.1", "::ffff:10.0.0.2", "10.1.2.3/8", "2001:DB8::1"], "version": 999, "updatedAt": "x"}`)
	c := r.config(t)
	if r.status != 200 || c.Version != 2 || c.NewAPIPercentage != 50.12 ||
		!slices.Equal(c.ForceNewAPIIPs, []string{"10.0.0.1", "10.0.0.2", "10.0.0.0/8", "2001:db8::1"}) {
		t.Fatalf("PUT list: %d %s", r.status, r.body.Data)
	}
	r = cfgDo(t, mux, http.MethodPut, cfgPath, `{"enableComparison": true, "forceOldAPIIPs": ["192.168.1.0/24"]}`)
	c = r.config(t)
	if c.Version != 3 || !c.EnableComparison || c.NewAPIPercentage != 50.12 || len(c.ForceNewAPIIPs) != 4 ||
		!slices.Equal(c.ForceOldAPIIPs, []string{"192.168.1.0/24"}) {
		t.Fatalf("PUT comparison: %s", r.body.Data)
	}
	// A body that changes nothing keeps the version; absent Content-Type is fine.
	req := httptest.NewRequest(http.MethodPut, cfgPath, strings.NewReader(`{"newAPIPercentage": 50.12}`))
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, req)
	if rec.Code != 200 || rec.Header().Get("ETag") != `"3"` {
		t.Fatalf("no-op PUT: %d %s", rec.Code, rec.Header().Get("ETag"))
	}
	r = cfgDo(t, mux, http.MethodGet, cfgPath, "")
	if got := r.config(t); r.etag != `"3"` || !sameConfig(got, c) {
		t.Fatalf("GET after PUTs: %s %s", r.etag, r.body.Data)
	}

	// If-Match: bare, quoted, stale, 0 once something is stored.
	if r = cfgDo(t, mux, http.MethodPut, cfgPath, `{"newAPIPercentage": 1}`, "If-Match", "3"); r.status != 200 || r.etag != `"4"` {
		t.Fatalf("bare If-Match: %d %s", r.status, r.etag)
	}
	if r = cfgDo(t, mux, http.MethodPut, cfgPath, `{"newAPIPercentage": 2}`, "If-Match", `"4"`); r.status != 200 || r.etag != `"5"` {
		t.Fatalf("quoted If-Match: %d %s", r.status, r.etag)
	}
	for _, im := range []string{"4", `"3"`, "0", "77"} {
		if r = cfgDo(t, mux, http.MethodPut, cfgPath, `{"newAPIPercentage": 3}`, "If-Match", im); r.status != 412 || r.body.Error != pathstats.EPreconditionFailed {
			t.Fatalf("stale If-Match %s: %d %s", im, r.status, r.body.Error)
		}
	}
	if got := cfgDo(t, mux, http.MethodGet, cfgPath, "").config(t); got.Version != 5 || got.NewAPIPercentage != 2 {
		t.Fatalf("stale PUTs changed the config: %+v", got)
	}

	// History pages newest first.
	const hist = cfgPath + "/history"
	type page struct {
		Items      []pathstats.ConfigChange `json:"items"`
		Total      int                      `json:"total"`
		NextBefore *int64                   `json:"nextBefore"`
	}
	var p page
	r = cfgDo(t, mux, http.MethodGet, hist+"?limit=2", "")
	if err := json.Unmarshal(r.body.Data, &p); err != nil || r.status != 200 {
		t.Fatalf("history: %d %s", r.status, r.body.Data)
	}
	if p.Total != 5 || len(p.Items) != 2 || p.Items[0].After.Version != 5 || p.Items[1].After.Version != 4 ||
		p.NextBefore == nil || *p.NextBefore != p.Items[1].ID {
		t.Fatalf("history page 1: %s", r.body.Data)
	}
	r = cfgDo(t, mux, http.MethodGet, fmt.Sprintf("%s?limit=10&before=%d", hist, *p.NextBefore), "")
	p = page{}
	if err := json.Unmarshal(r.body.Data, &p); err != nil || len(p.Items) != 3 || p.NextBefore != nil {
		t.Fatalf("history page 2: %s", r.body.Data)
	}
	first := p.Items[2]
	if first.Actor != "alice" || first.Source != "manual" || first.Reason != "canary start" ||
		first.Before.Version != 0 || first.After.Version != 1 || first.After.NewAPIPercentage != 50.12 ||
		p.Items[0].Actor != "admin" || p.Items[0].Before.EnableComparison || !p.Items[0].After.EnableComparison {
		t.Fatalf("history entries: %s", r.body.Data)
	}
	for _, q := range []string{"?limit=0", "?limit=x", "?before=0", "?before=-3", "?before=1.5"} {
		if r = cfgDo(t, mux, http.MethodGet, hist+q, ""); r.status != 400 || r.body.Error != pathstats.EInvalidParameter {
			t.Errorf("history %s: %d %s", q, r.status, r.body.Error)
		}
	}
}

// Two concurrent PUTs of different fields both survive, 20 times over.
func TestConcurrentPutsOfDifferentFields(t *testing.T) {
	t.Parallel()
	e := newCfgEnv(t)
	muxA := cfgMux(NewStore(e.kv, e.hist, quiet(StoreOptions{})))
	muxB := cfgMux(NewStore(cfgOpenKV(t, e.srv), e.hist, quiet(StoreOptions{})))
	for round := 1; round <= 20; round++ {
		var wg sync.WaitGroup
		var ra, rb cfgReply
		wg.Go(func() {
			ra = cfgDo(t, muxA, http.MethodPut, cfgPath, fmt.Sprintf(`{"newAPIPercentage": %d}`, round))
		})
		wg.Go(func() {
			rb = cfgDo(t, muxB, http.MethodPut, cfgPath, fmt.Sprintf(`{"forceNewAPIIPs": ["10.0.0.%d"]}`, round))
		})
		wg.Wait()
		if ra.status != 200 || rb.status != 200 {
			t.Fatalf("round %d: %d %s / %d %s", round, ra.status, ra.body.Message, rb.status, rb.body.Message)
		}
		got := cfgDo(t, muxA, http.MethodGet, cfgPath, "").config(t)
		if got.NewAPIPercentage != float64(round) || !slices.Equal(got.ForceNewAPIIPs, []string{fmt.Sprintf("10.0.0.%d", round)}) ||
			got.Version != uint64(2*round) {
			t.Fatalf("round %d: a change was lost: %+v", round, got)
		}
	}
}

// GET answers the held config while KV is down; PUT answers 503.
func TestHandlersWhenKVDown(t *testing.T) {
	t.Parallel()
	e := newCfgEnv(t)
	s := NewStore(e.kv, e.hist, quiet(StoreOptions{}))
	mux := cfgMux(s)
	if r := cfgDo(t, mux, http.MethodPut, cfgPath, `{"newAPIPercentage": 7}`); r.status != 200 {
		t.Fatalf("PUT: %d", r.status)
	}
	e.srv.Shutdown()
	r := cfgDo(t, mux, http.MethodGet, cfgPath, "")
	if c := r.config(t); r.status != 200 || c.NewAPIPercentage != 7 || r.etag != `"1"` {
		t.Fatalf("GET with KV down: %d %s", r.status, r.body.Data)
	}
	if r = cfgDo(t, mux, http.MethodPut, cfgPath, `{"newAPIPercentage": 8}`); r.status != 503 || r.body.Error != pathstats.EUnavailable {
		t.Fatalf("PUT with KV down: %d %s", r.status, r.body.Error)
	}
}
