package migration

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strings"

	"github.com/pathstats/pathstats/internal/inputerr"
)

// ipSet matches addresses against a list of IPs and CIDRs in time
// independent of the list size: single addresses in a map, prefixes in a
// map keyed by the masked prefix, probed once per distinct prefix length.
type ipSet struct {
	addrs    map[netip.Addr]struct{}
	prefixes map[netip.Prefix]struct{}
	lens4    []int // distinct prefix lengths of IPv4 prefixes
	lens6    []int // distinct prefix lengths of IPv6 prefixes
}

// Reasons an IP list entry is refused.
var (
	errNotIP      = errors.New("not an IP address or CIDR")
	errZone       = errors.New("an IPv6 zone (%…) is not allowed")
	errMappedBits = errors.New("an IPv4-mapped prefix must be /96 or longer; write it as an IPv4 CIDR (::ffff:10.0.0.0/104 is 10.0.0.0/8)")
)

// parseIPEntry parses an IP or a CIDR into a masked prefix (an IP is a
// full-length one). IPv4-mapped IPv6 forms are unmapped, as client
// addresses are: ::ffff:10.0.0.1 is 10.0.0.1 and ::ffff:10.0.0.0/104 is
// 10.0.0.0/8, so both match IPv4 clients however they connect. A mapped
// prefix shorter than /96 (it would reach outside the mapped range) and a
// zone are refused. The error is a reason without the entry.
func parseIPEntry(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, errNotIP
		}
		a, bits := p.Addr(), p.Bits()
		if a.Is4In6() {
			if bits < 96 {
				return netip.Prefix{}, errMappedBits
			}
			a, bits = a.Unmap(), bits-96
		}
		return netip.PrefixFrom(a, bits).Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	switch {
	case err != nil:
		return netip.Prefix{}, errNotIP
	case a.Zone() != "":
		return netip.Prefix{}, errZone
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// newIPSet builds a set from IP and CIDR entries; it skips invalid entries
// and returns the first error seen along with the set of the valid ones.
func newIPSet(entries []string) (*ipSet, error) {
	s := &ipSet{}
	var firstErr error
	for _, e := range entries {
		p, err := parseIPEntry(e)
		if err != nil {
			if firstErr == nil {
				firstErr = fmt.Errorf("%s: %w", inputerr.Quote(e), err)
			}
			continue
		}
		s.add(p)
	}
	return s, firstErr
}

func (s *ipSet) add(p netip.Prefix) {
	if p.IsSingleIP() {
		if s.addrs == nil {
			s.addrs = make(map[netip.Addr]struct{})
		}
		s.addrs[p.Addr()] = struct{}{}
		return
	}
	if s.prefixes == nil {
		s.prefixes = make(map[netip.Prefix]struct{})
	}
	s.prefixes[p] = struct{}{}
	lens := &s.lens6
	if p.Addr().Is4() {
		lens = &s.lens4
	}
	if !slices.Contains(*lens, p.Bits()) {
		*lens = append(*lens, p.Bits())
		slices.Sort(*lens)
	}
}

// contains reports whether ip (already unmapped, without zone) is in the set.
func (s *ipSet) contains(ip netip.Addr) bool {
	if s == nil || !ip.IsValid() {
		return false
	}
	if _, ok := s.addrs[ip]; ok {
		return true
	}
	lens := s.lens6
	if ip.Is4() {
		lens = s.lens4
	}
	for _, l := range lens {
		p, err := ip.Prefix(l)
		if err != nil {
			continue
		}
		if _, ok := s.prefixes[p]; ok {
			return true
		}
	}
	return false
}

// normIP unmaps IPv4-mapped IPv6 addresses and drops zones so that list
// matching and hashing see one form per client.
func normIP(ip netip.Addr) netip.Addr {
	return ip.Unmap().WithZone("")
}

// ClientIP finds the client address of a request: the socket peer, unless
// the peer is a trusted proxy; then the configured header.
type ClientIP struct {
	trusted *ipSet
	header  string // canonical header name; "" = always the peer
	xff     bool
}

// NewClientIP builds a ClientIP. trusted lists the proxies (IPs or CIDRs)
// whose header is believed; header names it (e.g. "CF-Connecting-IP" or
// "X-Forwarded-For"). With no header or no trusted proxy, the peer is used.
func NewClientIP(trusted []string, header string) (*ClientIP, error) {
	set, err := newIPSet(trusted)
	if err != nil {
		return nil, fmt.Errorf("trusted proxies: %w", err)
	}
	h := http.CanonicalHeaderKey(strings.TrimSpace(header))
	return &ClientIP{trusted: set, header: h, xff: h == "X-Forwarded-For"}, nil
}

// From returns the client address of r. The header is read only when the
// socket peer is a trusted proxy; for X-Forwarded-For (all lines joined)
// it is the right-most address that is not a trusted proxy; for any other
// header its value. An unparsable header yields the peer. The result is
// unmapped (IPv4-mapped IPv6 → IPv4) and has no zone; it is the zero Addr
// only when RemoteAddr itself is unparsable.
func (c *ClientIP) From(r *http.Request) netip.Addr {
	peer := peerAddr(r.RemoteAddr)
	if c == nil || c.header == "" || !c.trusted.contains(peer) {
		return peer
	}
	if c.xff {
		return c.fromXFF(r.Header.Values(c.header), peer)
	}
	if a, ok := parseHeaderAddr(r.Header.Get(c.header)); ok {
		return a
	}
	return peer
}

// fromXFF walks the X-Forwarded-For chain from the right, skipping trusted
// proxies. When every entry is trusted, the left-most one is the client.
func (c *ClientIP) fromXFF(lines []string, peer netip.Addr) netip.Addr {
	joined := strings.Join(lines, ",")
	if strings.TrimSpace(joined) == "" {
		return peer
	}
	parts := strings.Split(joined, ",")
	last := peer
	for i := len(parts) - 1; i >= 0; i-- {
		a, ok := parseHeaderAddr(parts[i])
		if !ok {
			return peer
		}
		if !c.trusted.contains(a) {
			return a
		}
		last = a
	}
	return last
}

// parseHeaderAddr parses an address from a header value, tolerating
// surrounding spaces, brackets and a port.
func parseHeaderAddr(s string) (netip.Addr, bool) {
	s = strings.TrimSpace(s)
	if s == "" {
		return netip.Addr{}, false
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return normIP(a), true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return normIP(ap.Addr()), true
	}
	if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
		if a, err := netip.ParseAddr(s[1 : len(s)-1]); err == nil {
			return normIP(a), true
		}
	}
	return netip.Addr{}, false
}

// peerAddr parses http.Request.RemoteAddr ("ip:port", or a bare IP).
func peerAddr(remote string) netip.Addr {
	if ap, err := netip.ParseAddrPort(remote); err == nil {
		return normIP(ap.Addr())
	}
	if a, err := netip.ParseAddr(remote); err == nil {
		return normIP(a)
	}
	return netip.Addr{}
}
