package snapshot

import (
	"runtime"
	"sync"
	"testing"

	"github.com/pathstats/pathstats"
)

// Benchmarks (go test -run XXX -bench . -benchtime 3x ./snapshot/):
// 1,000,000 paths must build and publish in ≤ 10 s, decode in ≤ 2 s and
// take ≤ 300 bytes of heap per path once decoded.

var items1M = sync.OnceValue(func() []pathstats.PathItem { return realisticItems(1_000_000) })

// BenchmarkBuild1M reads 1,000,000 paths from a WindowReader and publishes
// them to the embedded NATS KV: encode, compress, checksum, chunk puts,
// config, snapshot:latest and cleanup of old versions.
func BenchmarkBuild1M(b *testing.B) {
	items := items1M()
	kv, _ := testKV(b)
	w := NewWriter(kv, newWindow(items), WriterOptions{Holder: "bench"})
	var cfg Config
	b.ResetTimer()
	for b.Loop() {
		var err error
		if cfg, err = w.Build(testCtx(b)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(cfg.Bytes), "payload-bytes")
	b.ReportMetric(float64(cfg.Chunks), "chunks")
	b.ReportMetric(float64(cfg.Bytes)/float64(cfg.PathCount), "payload-bytes/path")
}

// BenchmarkDecode1M decodes a 1,000,000-path payload into a View
// (decompress, decode, lowercase buffer, proxy index).
func BenchmarkDecode1M(b *testing.B) {
	payload, err := encodePayload(items1M())
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(payload)))
	b.ResetTimer()
	for b.Loop() {
		if _, err := decodePayload(payload); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLoad1M is what a node does for a new version: fetch the chunks
// from the embedded NATS KV, verify the checksum, decode.
func BenchmarkLoad1M(b *testing.B) {
	kv, _ := testKV(b)
	w := NewWriter(kv, newWindow(items1M()), WriterOptions{Holder: "bench"})
	if _, err := w.Build(testCtx(b)); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		if _, err := NewReader(kv, ReaderOptions{}).Load(testCtx(b)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHeapPerPath1M reports the live heap a decoded 1,000,000-path
// View holds, per path (after GC, the payload and scratch buffers freed).
func BenchmarkHeapPerPath1M(b *testing.B) {
	payload, err := encodePayload(items1M())
	if err != nil {
		b.Fatal(err)
	}
	var perPath float64
	for b.Loop() {
		before := liveHeap()
		v, err := decodePayload(payload)
		if err != nil {
			b.Fatal(err)
		}
		perPath = float64(liveHeap()-before) / float64(v.Len())
		runtime.KeepAlive(v)
	}
	b.ReportMetric(perPath, "heap-bytes/path")
}

func liveHeap() int64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}

// BenchmarkQuery100k queries a 100,000-path View the ways the admin API
// does.
func BenchmarkQuery100k(b *testing.B) {
	items := realisticItems(100_000)
	v := NewView(Config{}, items)
	cases := []struct {
		name string
		q    pathstats.PathQuery
	}{
		{"unfiltered", pathstats.PathQuery{Page: 1, Limit: 50}},
		{"deep-page", pathstats.PathQuery{Page: 499, Limit: 200}},
		{"proxy", pathstats.PathQuery{ProxyID: "shop", Page: 1, Limit: 50}},
		{"proxy-deep", pathstats.PathQuery{ProxyID: "shop", Page: 120, Limit: 200}},
		{"q-rare", pathstats.PathQuery{Q: "/4242/", Page: 1, Limit: 50}},
		{"q-some", pathstats.PathQuery{Q: "Payments/1", Page: 1, Limit: 50}},
		{"q-all", pathstats.PathQuery{Q: "/api/", Page: 1, Limit: 50}},
		{"q-none", pathstats.PathQuery{Q: "nothing", Page: 1, Limit: 50}},
		{"q-unicode", pathstats.PathQuery{Q: "STRAßE", Page: 1, Limit: 50}},
		{"q-proxy", pathstats.PathQuery{Q: "orders", ProxyID: "shop", Page: 2, Limit: 50}},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			var total int
			b.ReportAllocs()
			for b.Loop() {
				total = v.Query(c.q).Total
			}
			b.ReportMetric(float64(total), "matches")
		})
	}
}
