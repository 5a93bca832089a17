package migration

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync/atomic"
	"testing"

	"github.com/pathstats/pathstats"
	"github.com/pathstats/pathstats/api"
)

// fixedSource answers every query with one fixed result, or fails when
// fail is set; it stands for a collaborator of the router.
type fixedSource struct {
	source string
	calls  atomic.Int64
	fail   atomic.Bool
}

func (s *fixedSource) Paths(_ context.Context, q pathstats.PathQuery) (api.PathsResult, error) {
	s.calls.Add(1)
	if s.fail.Load() {
		return api.PathsResult{}, pathstats.Errorf(pathstats.EUnavailable, "injected fault")
	}
	return api.PathsResult{
		Items: []api.PathItemJSON{{Path: "/from/" + s.source + "/" + q.Q, RequestCount: 3}},
		Total: 1,
		Meta:  api.PathsMeta{DataSource: s.source},
	}, nil
}

func cfgWith(version uint64, pct float64, forceNew, forceOld []string) pathstats.MigrationConfig {
	return pathstats.MigrationConfig{NewAPIPercentage: pct, ForceNewAPIIPs: forceNew, ForceOldAPIIPs: forceOld, Version: version}
}

func TestDecidePrecedence(t *testing.T) {
	rt := NewRouter(RouterOptions{})
	cfg := cfgWith(1, 100,
		[]string{"192.0.2.1", "10.0.0.0/8", "2001:db8::/32", "198.51.100.0/24"},
		[]string{"192.0.2.1", "10.1.0.0/16", "2001:db8:1::/48", "198.51.100.0/24"})
	cases := []struct {
		ip     string
		useNew bool
		reason string
	}{
		{"192.0.2.1", false, ReasonForcedOld},        // in both lists: old wins
		{"::ffff:192.0.2.1", false, ReasonForcedOld}, // mapped form matches too
		{"198.51.100.9", false, ReasonForcedOld},     // same CIDR in both lists
		{"10.1.2.3", false, ReasonForcedOld},         // v4 CIDR old inside v4 CIDR new
		{"10.2.2.3", true, ReasonForcedNew},          // only in the new CIDR
		{"2001:db8:1::5", false, ReasonForcedOld},    // v6 CIDR old inside v6 CIDR new
		{"2001:db8:2::5", true, ReasonForcedNew},
		{"203.0.113.5", true, ReasonPercentage}, // 100 %
	}
	for _, tc := range cases {
		useNew, reason := rt.Decide(netip.MustParseAddr(tc.ip), cfg)
		if useNew != tc.useNew || reason != tc.reason {
			t.Errorf("Decide(%s) = %v %q, want %v %q", tc.ip, useNew, reason, tc.useNew, tc.reason)
		}
	}
	// At 0 % only the forced-new list goes new.
	cfg0 := cfgWith(2, 0, cfg.ForceNewAPIIPs, cfg.ForceOldAPIIPs)
	if useNew, reason := rt.Decide(netip.MustParseAddr("203.0.113.5"), cfg0); useNew || reason != ReasonPercentage {
		t.Errorf("0%%: got %v %q", useNew, reason)
	}
	if useNew, _ := rt.Decide(netip.MustParseAddr("10.2.2.3"), cfg0); !useNew {
		t.Error("forced-new at 0% went old")
	}
}

func TestDecideRebuildsListsOnChange(t *testing.T) {
	rt := NewRouter(RouterOptions{})
	ip := netip.MustParseAddr("203.0.113.5")
	if _, reason := rt.Decide(ip, cfgWith(1, 0, nil, []string{"203.0.113.5"})); reason != ReasonForcedOld {
		t.Fatalf("v1: %q", reason)
	}
	if _, reason := rt.Decide(ip, cfgWith(2, 0, []string{"203.0.113.0/24"}, nil)); reason != ReasonForcedNew {
		t.Fatalf("v2: %q", reason)
	}
	// Unversioned configs with other lists are not mistaken for each other.
	if _, reason := rt.Decide(ip, cfgWith(0, 0, nil, []string{"203.0.113.5"})); reason != ReasonForcedOld {
		t.Fatalf("v0 a: %q", reason)
	}
	if _, reason := rt.Decide(ip, cfgWith(0, 0, nil, []string{"198.51.100.1"})); reason != ReasonPercentage {
		t.Fatalf("v0 b: %q", reason)
	}
}

func TestDecideLegacyOff(t *testing.T) {
	var off atomic.Bool
	rt := NewRouter(RouterOptions{LegacyOff: off.Load})
	cfg := cfgWith(1, 0, nil, []string{"192.0.2.1"})
	ip := netip.MustParseAddr("192.0.2.1")
	if useNew, reason := rt.Decide(ip, cfg); useNew || reason != ReasonForcedOld {
		t.Fatalf("legacy on: %v %q", useNew, reason)
	}
	off.Store(true)
	if useNew, reason := rt.Decide(ip, cfg); !useNew || reason != ReasonLegacyOff {
		t.Fatalf("legacy off: %v %q", useNew, reason)
	}
}

type routedAnswer struct {
	status, reason, header, dataSource string
	path                               string
}

func get(t *testing.T, h http.Handler, remote, target string, hdr map[string]string) routedAnswer {
	t.Helper()
	r := httptest.NewRequest("GET", target, nil)
	r.RemoteAddr = remote
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	var body struct {
		Data     []api.PathItemJSON `json:"data"`
		Metadata api.PathsMeta      `json:"metadata"`
	}
	_ = json.Unmarshal(w.Body.Bytes(), &body)
	a := routedAnswer{status: fmt.Sprint(w.Code), reason: w.Header().Get(RouteHeader),
		header: w.Header().Get("X-Pathstats-Data-Source"), dataSource: body.Metadata.DataSource}
	if len(body.Data) > 0 {
		a.path = body.Data[0].Path
	}
	return a
}

func TestRouterServeHTTP(t *testing.T) {
	newSrc, oldSrc := &fixedSource{source: api.SourceSnapshot}, &fixedSource{source: api.SourceLegacy}
	cip, err := NewClientIP([]string{"10.0.0.0/8"}, "CF-Connecting-IP")
	if err != nil {
		t.Fatal(err)
	}
	var cfg atomic.Pointer[pathstats.MigrationConfig]
	c := cfgWith(1, 0, []string{"192.0.2.50"}, []string{"192.0.2.60"})
	cfg.Store(&c)
	rt := NewRouter(RouterOptions{Config: func() pathstats.MigrationConfig { return *cfg.Load() }, New: newSrc, Old: oldSrc, ClientIP: cip})

	cases := []struct {
		name, remote string
		hdr          map[string]string
		want         routedAnswer
	}{
		{"percentage 0 → old", "198.51.100.7:1", nil, routedAnswer{"200", ReasonPercentage, api.SourceLegacy, api.SourceLegacy, "/from/do-legacy/x"}},
		{"forced new by socket", "192.0.2.50:1", nil, routedAnswer{"200", ReasonForcedNew, api.SourceSnapshot, api.SourceSnapshot, "/from/kv-snapshot/x"}},
		{"spoofed header from untrusted peer ignored", "198.51.100.7:1", map[string]string{"CF-Connecting-IP": "192.0.2.50"},
			routedAnswer{"200", ReasonPercentage, api.SourceLegacy, api.SourceLegacy, "/from/do-legacy/x"}},
		{"header from trusted proxy used", "10.0.0.1:1", map[string]string{"CF-Connecting-IP": "192.0.2.50"},
			routedAnswer{"200", ReasonForcedNew, api.SourceSnapshot, api.SourceSnapshot, "/from/kv-snapshot/x"}},
		{"forced old", "10.0.0.1:1", map[string]string{"CF-Connecting-IP": "192.0.2.60"},
			routedAnswer{"200", ReasonForcedOld, api.SourceLegacy, api.SourceLegacy, "/from/do-legacy/x"}},
	}
	for _, tc := range cases {
		if got := get(t, rt, tc.remote, "/api/admin/paths?q=x", tc.hdr); got != tc.want {
			t.Errorf("%s: got %+v, want %+v", tc.name, got, tc.want)
		}
	}
	// Bad input: 400 before any source is called.
	before := newSrc.calls.Load() + oldSrc.calls.Load()
	if got := get(t, rt, "198.51.100.7:1", "/api/admin/paths?page=0", nil); got.status != "400" {
		t.Errorf("page=0: status %s", got.status)
	}
	if newSrc.calls.Load()+oldSrc.calls.Load() != before {
		t.Error("a source was called for bad input")
	}
	// 100 % → everyone not forced old goes new.
	c2 := cfgWith(2, 100, nil, nil)
	cfg.Store(&c2)
	if got := get(t, rt, "198.51.100.7:1", "/api/admin/paths?q=x", nil); got.reason != ReasonPercentage || got.dataSource != api.SourceSnapshot {
		t.Errorf("100%%: %+v", got)
	}
	st := rt.Stats()
	if st.New != 3 || st.Old != 3 || st.ByReason["new/forced-new"] != 2 || st.ByReason["old/forced-old"] != 1 ||
		st.ByReason["old/percentage"] != 2 || st.ByReason["new/percentage"] != 1 {
		t.Errorf("stats = %+v", st)
	}
}

// A fault injected into the new path is seen by the monitor, which rolls
// the percentage back to 0; later requests go old.
func TestRouterAutoRollbackOnFault(t *testing.T) {
	newSrc, oldSrc := &fixedSource{source: api.SourceSnapshot}, &fixedSource{source: api.SourceLegacy}
	up := newRecordingUpdater(cfgWith(1, 100, nil, nil))
	mon := NewMonitor(MonitorOptions{Updater: up, Actor: "node-1"})
	rt := NewRouter(RouterOptions{Config: up.Current, New: newSrc, Old: oldSrc, Monitor: mon})
	for i := range 300 {
		if i == 100 {
			newSrc.fail.Store(true)
		}
		a := get(t, rt, fmt.Sprintf("198.51.%d.%d:1", i/250, i%250), "/api/admin/paths", nil)
		if (i < 100) != (a.status == "200") {
			t.Fatalf("request %d: status %s", i, a.status)
		}
	}
	if s := mon.Stats(); s.Samples != 300 || s.ErrorRate < 66 || s.ErrorRate > 67 {
		t.Fatalf("stats %+v", s)
	}
	rolled, err := mon.Check(context.Background())
	if err != nil || !rolled {
		t.Fatalf("Check = %v, %v", rolled, err)
	}
	if a := get(t, rt, "198.51.0.1:1", "/api/admin/paths", nil); a.status != "200" || a.dataSource != api.SourceLegacy {
		t.Fatalf("after rollback: %+v", a)
	}
	if st := rt.Stats(); st.NewErrors != 200 {
		t.Errorf("new errors = %d", st.NewErrors)
	}
}

func BenchmarkDecide(b *testing.B) {
	var forceNew, forceOld []string
	for i := range 50 {
		forceNew = append(forceNew, fmt.Sprintf("192.0.2.%d", i), fmt.Sprintf("2001:db8:%x::1", i))
		forceOld = append(forceOld, fmt.Sprintf("198.51.100.%d", i), fmt.Sprintf("2001:db8:1:%x::/64", i))
	}
	forceNew[0], forceNew[1] = "10.0.0.0/8", "172.16.0.0/12"
	forceOld[0], forceOld[1] = "100.64.0.0/10", "2001:db8:ffff::/48"
	cfg := cfgWith(7, 37.5, forceNew, forceOld)
	rt := NewRouter(RouterOptions{})
	ips := []netip.Addr{netip.MustParseAddr("203.0.113.9"), netip.MustParseAddr("2001:db8:2::9"),
		netip.MustParseAddr("192.0.2.7"), netip.MustParseAddr("198.51.100.200")}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		rt.Decide(ips[i%len(ips)], cfg)
	}
}
