package migration

import (
	"math/rand/v2"
	"net/netip"
	"testing"
)

// The hash rule's test vectors, also listed in Bucket's doc comment
// (cross-checked with Python's hashlib).
func TestBucketVectors(t *testing.T) {
	vectors := []struct {
		ip     string
		bucket uint32
	}{
		{"192.0.2.1", 1023},
		{"10.0.0.1", 3441},
		{"203.0.113.77", 4554},
		{"2001:db8::1", 6616},
		{"2001:db8:abcd::42", 1341},
		{"::ffff:192.0.2.1", 1023},
	}
	for _, v := range vectors {
		if got := Bucket(netip.MustParseAddr(v.ip)); got != v.bucket {
			t.Errorf("Bucket(%s) = %d, want %d", v.ip, got, v.bucket)
		}
	}
}

func TestThreshold(t *testing.T) {
	cases := map[float64]uint32{0: 0, -1: 0, 0.01: 1, 0.005: 1, 0.004: 0, 1: 100, 10.25: 1025, 50: 5000, 99.99: 9999, 100: 10000, 150: 10000}
	for p, want := range cases {
		if got := Threshold(p); got != want {
			t.Errorf("Threshold(%v) = %d, want %d", p, got, want)
		}
	}
}

func randomIP(r *rand.Rand) netip.Addr {
	if r.IntN(2) == 0 {
		var b [4]byte
		for i := range b {
			b[i] = byte(r.UintN(256))
		}
		return netip.AddrFrom4(b)
	}
	var b [16]byte
	for i := range b {
		b[i] = byte(r.UintN(256))
	}
	b[0] = 0x20 // global unicast, never IPv4-mapped
	return netip.AddrFrom16(b)
}

// Property: the same client gets the same answer twice, and raising the
// percentage never moves a client from new back to old.
func TestStickyAndMonotonic(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		ip := randomIP(r)
		p1 := float64(r.IntN(10001)) / 100
		p2 := p1 + float64(r.IntN(10001-int(p1*100+0.5)))/100
		a := UsesNew(ip, p1)
		if a != UsesNew(ip, p1) {
			t.Fatalf("%s at %v: not sticky", ip, p1)
		}
		if a && !UsesNew(ip, p2) {
			t.Fatalf("%s new at %v but old at %v", ip, p1, p2)
		}
	}
}

func TestUniformity(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	ips := make([]netip.Addr, 10000)
	for i := range ips {
		ips[i] = randomIP(r)
	}
	for _, p := range []float64{0, 1, 10, 50, 90, 100} {
		n := 0
		for _, ip := range ips {
			if UsesNew(ip, p) {
				n++
			}
		}
		share := 100 * float64(n) / float64(len(ips))
		switch {
		case p == 0 && n != 0, p == 100 && n != len(ips):
			t.Errorf("at %v%%: %d of %d new", p, n, len(ips))
		case share < p-1.5 || share > p+1.5:
			t.Errorf("at %v%%: share %.2f%% outside ±1.5 points", p, share)
		}
	}
}
