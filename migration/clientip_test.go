package migration

import (
	"net/http/httptest"
	"net/netip"
	"testing"
)

func TestClientIPFrom(t *testing.T) {
	xff, err := NewClientIP([]string{"10.0.0.0/8", "2001:db8:ffff::/48", "192.0.2.10"}, "x-forwarded-for")
	if err != nil {
		t.Fatal(err)
	}
	cf, err := NewClientIP([]string{"10.0.0.0/8"}, "CF-Connecting-IP")
	if err != nil {
		t.Fatal(err)
	}
	none, err := NewClientIP(nil, "")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		c      *ClientIP
		remote string
		header string
		values []string
		want   string
	}{
		{"no header, peer", xff, "198.51.100.7:5000", "", nil, "198.51.100.7"},
		{"spoofed xff from untrusted peer ignored", xff, "198.51.100.7:5000", "X-Forwarded-For", []string{"203.0.113.1"}, "198.51.100.7"},
		{"spoofed cf from untrusted peer ignored", cf, "198.51.100.7:5000", "CF-Connecting-IP", []string{"203.0.113.1"}, "198.51.100.7"},
		{"cf from trusted proxy used", cf, "10.1.2.3:443", "CF-Connecting-IP", []string{" 203.0.113.1 "}, "203.0.113.1"},
		{"cf unparsable → peer", cf, "10.1.2.3:443", "CF-Connecting-IP", []string{"nonsense"}, "10.1.2.3"},
		{"cf missing → peer", cf, "10.1.2.3:443", "", nil, "10.1.2.3"},
		{"xff from trusted proxy used", xff, "10.1.2.3:443", "X-Forwarded-For", []string{"203.0.113.1"}, "203.0.113.1"},
		{"right-most untrusted, client spoofs left part", xff, "10.1.2.3:443", "X-Forwarded-For",
			[]string{"1.1.1.1, 203.0.113.9, 192.0.2.10, 10.9.9.9"}, "203.0.113.9"},
		{"chain over several header lines", xff, "[2001:db8:ffff::1]:443", "X-Forwarded-For",
			[]string{"6.6.6.6, 2001:db8::77", "10.0.0.5", "2001:db8:ffff::9"}, "2001:db8::77"},
		{"all trusted → left-most", xff, "10.1.2.3:443", "X-Forwarded-For", []string{"10.0.0.1, 10.0.0.2"}, "10.0.0.1"},
		{"unparsable entry → peer", xff, "10.1.2.3:443", "X-Forwarded-For", []string{"203.0.113.1, garbage"}, "10.1.2.3"},
		{"entry with port", xff, "10.1.2.3:443", "X-Forwarded-For", []string{"[2001:db8::5]:8080"}, "2001:db8::5"},
		{"mapped peer unmapped", none, "[::ffff:198.51.100.7]:5000", "", nil, "198.51.100.7"},
		{"no config: header ignored", none, "198.51.100.7:5000", "X-Forwarded-For", []string{"203.0.113.1"}, "198.51.100.7"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = tc.remote
			for _, v := range tc.values {
				r.Header.Add(tc.header, v)
			}
			if got := tc.c.From(r); got != netip.MustParseAddr(tc.want) {
				t.Errorf("From = %v, want %s", got, tc.want)
			}
		})
	}
}

func TestNewClientIPRejectsBadEntries(t *testing.T) {
	for _, bad := range []string{"10.0.0.0/33", "not-an-ip", "1.2.3"} {
		if _, err := NewClientIP([]string{bad}, "X-Forwarded-For"); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestIPSet(t *testing.T) {
	s, err := newIPSet([]string{"192.0.2.1", "10.0.0.0/8", "172.16.0.0/12", "2001:db8::/32", "::ffff:198.51.100.0/120", "fe80::1"})
	if err != nil {
		t.Fatal(err)
	}
	in := []string{"192.0.2.1", "10.255.0.1", "172.31.255.255", "2001:db8:1::1", "198.51.100.200", "fe80::1"}
	out := []string{"192.0.2.2", "11.0.0.1", "172.32.0.0", "2001:db9::1", "198.51.101.1", "::ffff:0:0"}
	for _, a := range in {
		if !s.contains(normIP(netip.MustParseAddr(a))) {
			t.Errorf("%s not matched", a)
		}
	}
	for _, a := range out {
		if s.contains(normIP(netip.MustParseAddr(a))) {
			t.Errorf("%s matched", a)
		}
	}
}
