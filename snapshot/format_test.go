package snapshot

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/pathstats/pathstats"
)

func TestPayloadRoundTrip(t *testing.T) {
	for _, n := range []int{0, 1, 2, 10_000} {
		items := randomItems(rand.New(rand.NewPCG(uint64(n), 7)), n)
		payload, err := encodePayload(items)
		if err != nil {
			t.Fatalf("n=%d: encode: %v", n, err)
		}
		chunks := split(payload, 4096)
		v, err := decodePayload(bytes.Join(chunks, nil))
		if err != nil {
			t.Fatalf("n=%d: decode: %v", n, err)
		}
		if v.Len() != n {
			t.Fatalf("n=%d: decoded %d items", n, v.Len())
		}
		for i := range items {
			if v.items[i] != items[i] {
				t.Fatalf("n=%d: item %d = %+v, want %+v", n, i, v.items[i], items[i])
			}
		}
	}
}

func TestPayloadSplit(t *testing.T) {
	for _, size := range []int{0, 1, 9, 10, 11, 25} {
		p := bytes.Repeat([]byte("x"), size)
		chunks := split(p, 10)
		if len(chunks) == 0 || !bytes.Equal(bytes.Join(chunks, nil), p) {
			t.Fatalf("size %d: chunks %q do not rebuild the payload", size, chunks)
		}
		for _, c := range chunks[:len(chunks)-1] {
			if len(c) != 10 {
				t.Fatalf("size %d: inner chunk of %d bytes", size, len(c))
			}
		}
		if last := chunks[len(chunks)-1]; len(last) > 10 || (len(last) == 0 && size > 0) {
			t.Fatalf("size %d: last chunk of %d bytes", size, len(last))
		}
	}
}

func TestDecodeRejectsCorruption(t *testing.T) {
	items := randomItems(rand.New(rand.NewPCG(3, 3)), 300)
	raw, err := appendRaw(nil, items)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := decodeRaw(raw); err != nil {
		t.Fatalf("valid raw payload: %v", err)
	}
	for _, cut := range []int{0, 3, 4, 10, len(raw) / 2, len(raw) - 1} {
		if _, err := decodeRaw(raw[:cut]); err == nil {
			t.Errorf("raw payload cut at %d decoded", cut)
		}
	}
	if _, err := decodeRaw(append(raw, 0)); err == nil {
		t.Error("trailing byte accepted")
	}
	payload, _ := encodePayload(items)
	if _, err := decodePayload(payload[:len(payload)-5]); !errors.Is(err, ErrDecode) {
		t.Errorf("truncated payload: err = %v, want ErrDecode", err)
	}
}

func TestEncodeRejectsHugePath(t *testing.T) {
	big := make([]byte, maxPathLen+1)
	_, err := encodePayload([]pathstats.PathItem{{Path: string(big)}})
	if err == nil {
		t.Fatal("path above maxPathLen encoded")
	}
}

// FuzzDecode: decoding arbitrary bytes, compressed or not, never panics,
// and whatever decodes re-encodes to an equal view.
func FuzzDecode(f *testing.F) {
	items := randomItems(rand.New(rand.NewPCG(5, 5)), 20)
	raw, _ := appendRaw(nil, items)
	payload, _ := encodePayload(items)
	f.Add(raw)
	f.Add(payload)
	f.Add([]byte("PSS\x01\x00\x00"))
	f.Add([]byte("PSS\x01\x01\x00\x00\x01a\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if v, err := decodePayload(b); err == nil {
			checkReencodes(t, v)
		} else if !errors.Is(err, ErrDecode) {
			t.Fatalf("error %v does not wrap ErrDecode", err)
		}
		if v, err := decodeRaw(b); err == nil {
			checkReencodes(t, v)
		}
	})
}

func checkReencodes(t *testing.T, v *View) {
	t.Helper()
	_ = v.Query(pathstats.PathQuery{Q: "a", Page: 1, Limit: 5})
	raw, err := appendRaw(nil, v.items)
	if err != nil {
		t.Fatalf("re-encode: %v", err)
	}
	v2, err := decodeRaw(raw)
	if err != nil {
		t.Fatalf("decode re-encoded: %v", err)
	}
	if len(v2.items) != len(v.items) {
		t.Fatalf("re-decoded %d items, want %d", len(v2.items), len(v.items))
	}
	for i := range v.items {
		if v.items[i] != v2.items[i] {
			t.Fatalf("item %d differs after re-encode", i)
		}
	}
}
