package rollout

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/pathstats/pathstats"
)

func TestParsePlanDefaults(t *testing.T) {
	p, err := ParsePlan([]byte(`{"steps":[1,10,50,100],"dwell":"10m"}`))
	if err != nil {
		t.Fatal(err)
	}
	if p.Gates != DefaultGates() || p.MinSamples != DefaultMinSamples || time.Duration(p.Dwell) != 10*time.Minute {
		t.Fatalf("plan = %+v", p)
	}
	p, err = ParsePlan([]byte(`{"steps":[0.01,99.99],"dwell":"10ms","gates":{"maxP99Ms":500},"minSamples":5}`))
	if err != nil {
		t.Fatal(err)
	}
	want := Gates{MinAccuracy: 99, MaxErrorRate: 1, MaxP99Ms: 500}
	if p.Gates != want || p.MinSamples != 5 {
		t.Fatalf("plan = %+v", p)
	}
}

func TestParsePlanValidation(t *testing.T) {
	steps21 := "[" + strings.Repeat("1,", 20) + "2]"
	cases := map[string]string{
		"empty":               ``,
		"null":                `null`,
		"not json":            `steps: 1`,
		"array":               `[1,2]`,
		"unknown field":       `{"steps":[1],"dwell":"1m","speed":2}`,
		"unknown gate":        `{"steps":[1],"dwell":"1m","gates":{"minLatency":1}}`,
		"trailing data":       `{"steps":[1],"dwell":"1m"}{}`,
		"no steps":            `{"steps":[],"dwell":"1m"}`,
		"steps null":          `{"steps":null,"dwell":"1m"}`,
		"21 steps":            `{"steps":` + steps21 + `,"dwell":"1m"}`,
		"zero step":           `{"steps":[0,10],"dwell":"1m"}`,
		"negative step":       `{"steps":[-1],"dwell":"1m"}`,
		"above 100":           `{"steps":[100.001],"dwell":"1m"}`,
		"three decimals":      `{"steps":[1.005],"dwell":"1m"}`,
		"decreasing":          `{"steps":[10,5],"dwell":"1m"}`,
		"repeated":            `{"steps":[5,5],"dwell":"1m"}`,
		"string step":         `{"steps":["1"],"dwell":"1m"}`,
		"missing dwell":       `{"steps":[1]}`,
		"dwell null":          `{"steps":[1],"dwell":null}`,
		"dwell number":        `{"steps":[1],"dwell":600}`,
		"dwell garbage":       `{"steps":[1],"dwell":"soon"}`,
		"dwell too short":     `{"steps":[1],"dwell":"5ms"}`,
		"dwell too long":      `{"steps":[1],"dwell":"169h"}`,
		"minAccuracy 101":     `{"steps":[1],"dwell":"1m","gates":{"minAccuracy":101}}`,
		"maxErrorRate -1":     `{"steps":[1],"dwell":"1m","gates":{"maxErrorRate":-1}}`,
		"maxP99Ms 0":          `{"steps":[1],"dwell":"1m","gates":{"maxP99Ms":0}}`,
		"gates string":        `{"steps":[1],"dwell":"1m","gates":"strict"}`,
		"minSamples 0":        `{"steps":[1],"dwell":"1m","minSamples":0}`,
		"minSamples fraction": `{"steps":[1],"dwell":"1m","minSamples":1.5}`,
	}
	for name, body := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := ParsePlan([]byte(body))
			if pathstats.ErrorCode(err) != pathstats.EInvalidBody {
				t.Fatalf("ParsePlan(%s) = %v, want INVALID_BODY", body, err)
			}
		})
	}
}

type reply struct {
	Success bool   `json:"success"`
	Error   string `json:"error"`
	Message string `json:"message"`
	Data    State  `json:"data"`
}

func do(t *testing.T, srv *httptest.Server, method, path, body string) (int, reply) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctxT(t), method, srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r reply
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatalf("%s %s: decode: %v", method, path, err)
	}
	return resp.StatusCode, r
}

func TestHandlers(t *testing.T) {
	kv, up := openKV(t), newMemUpdater()
	d := newDriver(kv, up, healthy(up), "node-a")
	mux := http.NewServeMux()
	for pattern, h := range Handlers(d) {
		mux.Handle(pattern, h)
	}
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	const path = "/api/admin/paths/migration-config/rollout"

	if code, r := do(t, srv, "GET", path, ""); code != 404 || r.Error != pathstats.ENotFound {
		t.Fatalf("GET before start = %d %+v", code, r)
	}
	if code, r := do(t, srv, "POST", path, `{"steps":[1],"dwell":"1m","extra":true}`); code != 400 || r.Error != pathstats.EInvalidBody {
		t.Fatalf("POST unknown field = %d %+v", code, r)
	}
	if code, r := do(t, srv, "POST", path, strings.Repeat(" ", maxBody+1)); code != 413 || r.Error != pathstats.EPayloadTooLarge {
		t.Fatalf("POST huge = %d %+v", code, r)
	}
	code, r := do(t, srv, "POST", path, `{"steps":[1,10,50,100],"dwell":"10m","gates":{"minAccuracy":99,"maxErrorRate":1,"maxP99Ms":200}}`)
	if code != 201 || !r.Success || r.Data.Status != StatusRunning || r.Data.ID == "" || time.Duration(r.Data.Plan.Dwell) != 10*time.Minute {
		t.Fatalf("POST = %d %+v", code, r)
	}
	id := r.Data.ID
	if code, r := do(t, srv, "POST", path, `{"steps":[5],"dwell":"1m"}`); code != 409 || r.Error != pathstats.EConflict {
		t.Fatalf("second POST = %d %+v", code, r)
	}
	if code, r := do(t, srv, "GET", path, ""); code != 200 || r.Data.ID != id || r.Data.Plan.MinSamples != DefaultMinSamples {
		t.Fatalf("GET = %d %+v", code, r)
	}
	if code, r := do(t, srv, "POST", path+"/abort", `{"why":"x"}`); code != 400 || r.Error != pathstats.EInvalidBody {
		t.Fatalf("abort unknown field = %d %+v", code, r)
	}
	if code, r := do(t, srv, "POST", path+"/abort", `{"reason":"latency spike"}`); code != 200 || r.Data.Status != StatusAborted || r.Data.Reason != "latency spike" {
		t.Fatalf("abort = %d %+v", code, r)
	}
	if code, r := do(t, srv, "POST", path+"/abort", ``); code != 409 || r.Error != pathstats.EConflict {
		t.Fatalf("abort again = %d %+v", code, r)
	}
}
