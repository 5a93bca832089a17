package migration

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/pathstats/pathstats"
	"github.com/pathstats/pathstats/api"
)

// TestMappedEntriesNormalisedOrRefused: IPv4-mapped IPv6 entries are
// rewritten as IPv4; a mapped prefix shorter than /96 is refused with a
// message naming the field, the entry and the rule.
func TestMappedEntriesNormalisedOrRefused(t *testing.T) {
	c := pathstats.MigrationConfig{ForceNewAPIIPs: []string{"::ffff:10.0.0.1", "::ffff:10.0.0.0/104", "::ffff:0:0/96", "::ffff:192.0.2.7/128"}}
	n, err := normalizeConfig(c)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"10.0.0.1", "10.0.0.0/8", "0.0.0.0/0", "192.0.2.7/32"}; !slices.Equal(n.ForceNewAPIIPs, want) {
		t.Fatalf("normalised %q, want %q", n.ForceNewAPIIPs, want)
	}
	for _, bad := range []string{"::ffff:10.0.0.0/80", "::ffff:10.0.0.0/95", "::ffff:0:0/0"} {
		err := Validate(pathstats.MigrationConfig{ForceOldAPIIPs: []string{"10.0.0.1", bad}})
		msg := pathstats.ErrorMessage(err)
		if pathstats.ErrorCode(err) != pathstats.EInvalidBody || !strings.HasPrefix(msg, "forceOldAPIIPs[1]: ") ||
			!strings.Contains(msg, "/96 or longer") || !strings.Contains(msg, bad) {
			t.Errorf("%s: %v", bad, err)
		}
	}
	err = Validate(pathstats.MigrationConfig{ForceNewAPIIPs: []string{"not-an-ip\x00" + strings.Repeat("x", 100)}})
	if msg := pathstats.ErrorMessage(err); !strings.HasPrefix(msg, `forceNewAPIIPs[0]: "not-an-ip\x00xx`) ||
		!strings.Contains(msg, `…": not an IP address or CIDR`) || strings.Contains(msg, strings.Repeat("x", 65)) {
		t.Errorf("message %q", msg)
	}
}

// TestMappedEntryMatches shows which clients an entry written in mapped
// form matches: IPv4 clients in the range, whether the socket peer is seen
// as 10.0.0.1 (IPv4 listener) or ::ffff:10.0.0.1 (dual-stack listener),
// and no IPv6 client (not even ::1 or the IPv4-compatible ::a00:1).
func TestMappedEntryMatches(t *testing.T) {
	cfg, err := normalizeConfig(cfgWith(1, 0, []string{"::ffff:10.0.0.0/104"}, []string{"::ffff:192.0.2.7"}))
	if err != nil {
		t.Fatal(err)
	}
	newSrc, oldSrc := &fixedSource{source: api.SourceSnapshot}, &fixedSource{source: api.SourceLegacy}
	rt := NewRouter(RouterOptions{Config: func() pathstats.MigrationConfig { return cfg }, New: newSrc, Old: oldSrc})
	for _, tc := range []struct{ remote, reason string }{
		{"10.0.0.1:5000", ReasonForcedNew},
		{"[::ffff:10.0.0.1]:5000", ReasonForcedNew},
		{"10.255.255.255:5000", ReasonForcedNew},
		{"[::ffff:10.255.0.9]:5000", ReasonForcedNew},
		{"192.0.2.7:5000", ReasonForcedOld},
		{"[::ffff:192.0.2.7]:5000", ReasonForcedOld},
		{"11.0.0.1:5000", ReasonPercentage},
		{"[2001:db8::1]:5000", ReasonPercentage},
		{"[::a00:1]:5000", ReasonPercentage},
		{"[::1]:5000", ReasonPercentage},
	} {
		if got := get(t, rt, tc.remote, "/api/admin/paths", nil); got.reason != tc.reason {
			t.Errorf("peer %s: %s, want %s", tc.remote, got.reason, tc.reason)
		}
	}
}

// TestTrustedProxiesMapped: a mapped trusted-proxy entry matches the proxy
// however it connects; a mapped prefix shorter than /96 and a zone are
// refused at start.
func TestTrustedProxiesMapped(t *testing.T) {
	cip, err := NewClientIP([]string{"::ffff:10.0.0.0/104"}, "X-Forwarded-For")
	if err != nil {
		t.Fatal(err)
	}
	for _, peer := range []string{"10.1.2.3:443", "[::ffff:10.1.2.3]:443"} {
		if got := cip.From(newRequest(peer, "203.0.113.9")); got != netip.MustParseAddr("203.0.113.9") {
			t.Errorf("peer %s: client %v, want the header's 203.0.113.9", peer, got)
		}
	}
	if got := cip.From(newRequest("[2001:db8::1]:443", "203.0.113.9")); got != netip.MustParseAddr("2001:db8::1") {
		t.Errorf("untrusted v6 peer: client %v", got)
	}
	for _, bad := range []string{"::ffff:10.0.0.0/80", "fe80::1%eth0"} {
		if _, err := NewClientIP([]string{bad}, "X-Forwarded-For"); err == nil || !strings.Contains(err.Error(), bad) {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

// newRequest is a request from peer carrying X-Forwarded-For: xff.
func newRequest(peer, xff string) *http.Request {
	r := httptest.NewRequest("GET", "/", nil)
	r.RemoteAddr = peer
	r.Header.Set("X-Forwarded-For", xff)
	return r
}

// FuzzParseIPEntry: an accepted entry is canonical after one rewrite (the
// stored form parses to itself), never a mapped address, and its set
// contains its own first address.
func FuzzParseIPEntry(f *testing.F) {
	for _, s := range []string{"10.0.0.1", "::ffff:10.0.0.0/104", "::ffff:10.0.0.0/80", "fe80::1%eth0", "2001:db8::/32", " 10.0.0.1/32 ", "::/0", "0.0.0.0/0", "::ffff:0:0/96", "1.2.3.4/33"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := parseIPEntry(s)
		if err != nil {
			if _, cerr := canonicalEntry(s); cerr == nil {
				t.Fatalf("%q: parse fails (%v) but canonical form accepted", s, err)
			}
			return
		}
		if p.Addr().Is4In6() || p.Addr().Zone() != "" || p != p.Masked() {
			t.Fatalf("%q: prefix %v", s, p)
		}
		canon, err := canonicalEntry(s)
		if err != nil {
			t.Fatalf("%q: canonical: %v", s, err)
		}
		if again, err := canonicalEntry(canon); err != nil || again != canon {
			t.Fatalf("%q: canonical %q, again %q %v", s, canon, again, err)
		}
		set, err := newIPSet([]string{canon})
		if err != nil || !set.contains(p.Addr()) {
			t.Fatalf("%q: set of %q does not contain %v (%v)", s, canon, p.Addr(), err)
		}
	})
}

// FuzzReadPatch: any PUT body gives a patch whose result validates, or an
// INVALID_BODY / INVALID_PERCENTAGE / 413 error whose message names no Go
// type and echoes at most 64 bytes of input.
func FuzzReadPatch(f *testing.F) {
	for _, s := range []string{`{"newAPIPercentage":12.5}`, `{"forceNewAPIIPs":["::ffff:10.0.0.0/104"]}`, `{"forceOldAPIIPs":["::ffff:10.0.0.0/80"]}`,
		`{"newAPIPercentage":5} x`, `{"enableComparison":"yes"}`, `{"a":1,"a":2}`, `[]`, `{"newAPIPercentage":NaN}`} {
		f.Add([]byte(s))
	}
	xs := strings.Repeat("x", 100)
	f.Add([]byte(`{"` + xs + `":1}`))
	f.Add([]byte(`{"forceOldAPIIPs":["` + xs + `"]}`))
	f.Add([]byte(`{"newAPIPercentage":1,"newAPIPercentage":2,"` + xs + `":3}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		r := httptest.NewRequest("PUT", "/api/admin/paths/migration-config", strings.NewReader(string(body)))
		p, err := readPatch(httptest.NewRecorder(), r)
		if err == nil {
			c := pathstats.DefaultMigrationConfig()
			p.apply(&c)
			if verr := Validate(c); verr != nil {
				t.Fatalf("accepted %q, then %v", body, verr)
			}
			return
		}
		switch code := pathstats.ErrorCode(err); code {
		case pathstats.EInvalidBody, pathstats.EInvalidPercentage, pathstats.EPayloadTooLarge:
		default:
			t.Fatalf("%q: %v", body, err)
		}
		msg := pathstats.ErrorMessage(err)
		for _, leak := range []string{"Go struct", "Go value", "json:", "pathstats."} {
			if strings.Contains(msg, leak) {
				t.Fatalf("message %q leaks %q", msg, leak)
			}
		}
		if strings.Contains(msg, strings.Repeat("x", 65)) || len(msg) > 512 {
			t.Fatalf("message of %d bytes: %q", len(msg), msg)
		}
	})
}
