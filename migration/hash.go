package migration

import (
	"crypto/sha256"
	"encoding/binary"
	"math"
	"net/netip"
)

// NumBuckets is the number of percentage buckets: one per 0.01 %.
const NumBuckets = 10000

// Bucket returns the canary bucket of a client address, in [0, NumBuckets).
//
// The rule, identical on every node and every release:
//
//  1. input = the 16 bytes of ip.As16(): an IPv6 address as is (any zone is
//     dropped); an IPv4 address, and an IPv4-mapped IPv6 address, as the
//     IPv4-mapped form ::ffff:a.b.c.d (so 192.0.2.1 and ::ffff:192.0.2.1
//     share a bucket). The invalid (zero) address hashes as 16 zero bytes.
//  2. h = SHA-256(input).
//  3. bucket = uint64 of h[0:8] read big-endian, mod 10000.
//
// Reducing a uniform 64-bit value mod 10000 biases the low buckets by at
// most 10000/2^64 ≈ 5.4e-16 relative to the others (bias < 1e-15).
//
// Test vectors (asserted in hash_test.go):
//
//	192.0.2.1         → 1023
//	10.0.0.1          → 3441
//	203.0.113.77      → 4554
//	2001:db8::1       → 6616
//	2001:db8:abcd::42 → 1341
//	::ffff:192.0.2.1  → 1023 (same as 192.0.2.1)
func Bucket(ip netip.Addr) uint32 {
	var in [16]byte
	if ip.IsValid() {
		in = ip.As16()
	}
	h := sha256.Sum256(in[:])
	return uint32(binary.BigEndian.Uint64(h[:8]) % NumBuckets)
}

// Threshold converts a percentage (0–100, two decimals) to the number of
// buckets routed new: round(percentage*100), clamped to [0, 10000]; NaN is 0.
func Threshold(percentage float64) uint32 {
	if math.IsNaN(percentage) || percentage <= 0 {
		return 0
	}
	t := math.Round(percentage * 100)
	if t >= NumBuckets {
		return NumBuckets
	}
	return uint32(t)
}

// UsesNew reports whether ip goes to the new path at the given percentage:
// Bucket(ip) < Threshold(percentage). Sticky (a pure function of ip and
// percentage), monotonic in percentage, resolution 0.01 %.
func UsesNew(ip netip.Addr, percentage float64) bool {
	return Bucket(ip) < Threshold(percentage)
}
