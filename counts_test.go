package pathstats

import (
	"strings"
	"testing"
	"time"
)

func TestLatencyBucket(t *testing.T) {
	cases := []struct {
		ms   float64
		want int
	}{{0, 0}, {1, 0}, {1.01, 1}, {2.5, 1}, {99, 6}, {100, 6}, {10000, 12}, {10001, 13}, {1e9, 13}}
	for _, c := range cases {
		if got := LatencyBucket(c.ms); got != c.want {
			t.Errorf("LatencyBucket(%v) = %d, want %d", c.ms, got, c.want)
		}
		d := time.Duration(c.ms * float64(time.Millisecond))
		if got := LatencyBucketOf(d); got != c.want {
			t.Errorf("LatencyBucketOf(%v) = %d, want %d", d, got, c.want)
		}
	}
}

func TestStatusClassAndDerivedCounts(t *testing.T) {
	var c Counts
	at := time.Unix(1000, 0)
	for _, s := range []int{100, 200, 204, 301, 404, 429, 500, 502, 504} {
		c.Observe(s, 1, at)
	}
	if c.Requests() != 9 || c.Errors() != 3 || c.ClientErrors() != 2 || c.Status[1] != 2 {
		t.Fatalf("%+v", c)
	}
	if c.LastSeenMs != 1_000_000 {
		t.Fatalf("last seen %d", c.LastSeenMs)
	}
}

func TestHourBucket(t *testing.T) {
	at := time.Date(2026, 11, 25, 13, 59, 59, 0, time.FixedZone("x", 5*3600))
	if got, want := HourBucket(at), time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC).Unix(); got != want {
		t.Fatalf("got %d want %d", got, want)
	}
	if HourBucket(time.Unix(-1, 0)) != -3600 {
		t.Fatal("negative times must floor")
	}
}

func TestPercentile(t *testing.T) {
	var c Counts
	if c.Percentile(0.99) != 0 {
		t.Fatal("empty percentile")
	}
	c.Latency[LatencyBucket(8)] = 90 // (5,10]
	c.Latency[LatencyBucket(400)] = 10
	if p := c.Percentile(0.5); p <= 5 || p > 10 {
		t.Fatalf("p50 %v", p)
	}
	if p := c.Percentile(0.99); p <= 250 || p > 500 {
		t.Fatalf("p99 %v", p)
	}
	var slow Counts
	slow.Latency[NumLatencyBuckets-1] = 3
	if p := slow.Percentile(0.5); p != 10000 {
		t.Fatalf("unbounded bucket p50 %v", p)
	}
}

func TestSplitBatchesDeterministic(t *testing.T) {
	var ds []Delta
	for i := 0; i < 1234; i++ {
		d := Delta{Key: Key{Hour: 3600 * int64(i%3), Path: "/p" + strings.Repeat("x", i%7)}}
		d.Status[1] = 1
		ds = append(ds, d)
	}
	bs := SplitBatches("base", "n", ds)
	if len(bs) != 3 || bs[0].ID != "base#0" || bs[2].ID != "base#2" || len(bs[2].Deltas) != 234 {
		t.Fatalf("split %d %s", len(bs), bs[0].ID)
	}
	for _, b := range bs {
		data, err := EncodeBatch(b)
		if err != nil || len(data) > MaxBatchBytes {
			t.Fatalf("encoded %d bytes %v", len(data), err)
		}
		back, err := DecodeBatch(data)
		if err != nil || back.ID != b.ID || len(back.Deltas) != len(b.Deltas) || back.Events() != b.Events() {
			t.Fatalf("round trip %v", err)
		}
	}
	if one := SplitBatches("solo", "n", ds[:5]); len(one) != 1 || one[0].ID != "solo" {
		t.Fatal("a small batch keeps the base id")
	}
}

func TestMaxBatchFitsNATS(t *testing.T) {
	ds := make([]Delta, MaxDeltasPerBatch)
	for i := range ds {
		ds[i].Path = "/" + strings.Repeat("é", MaxPathLength/2-1)
		for j := range ds[i].Latency {
			ds[i].Latency[j] = 1 << 40
		}
		ds[i].Status = [5]int64{1 << 40, 1 << 40, 1 << 40, 1 << 40, 1 << 40}
		ds[i].LastSeenMs = 1 << 50
		ds[i].ProxyID = strings.Repeat("p", 64)
	}
	data, err := EncodeBatch(&Batch{ID: strings.Repeat("i", 100), Deltas: ds})
	if err != nil {
		t.Fatal(err)
	}
	if len(data) > MaxBatchBytes {
		t.Fatalf("worst-case batch is %d bytes, limit %d", len(data), MaxBatchBytes)
	}
}

func TestDecodeBatchRejects(t *testing.T) {
	good, _ := EncodeBatch(&Batch{ID: "x", Deltas: []Delta{{Key: Key{Hour: 3600, Path: "/a"}}}})
	for _, in := range []string{string(good[:len(good)-1]), string(good) + "x", ``, `{`, `[]`, `{"deltas":[]}`, `{"id":"x","deltas":[{"h":1,"p":"/a"}]}`,
		`{"id":"x","deltas":[{"h":3600,"p":"a"}]}`, `{"id":"x","deltas":[{"h":3600,"p":"/a","s":[-1,0,0,0,0]}]}`} {
		if _, err := DecodeBatch([]byte(in)); err == nil {
			t.Errorf("DecodeBatch(%q) accepted", in)
		}
	}
}

func FuzzDecodeBatch(f *testing.F) {
	b := &Batch{ID: "x", Node: "n", CreatedMs: 5, Deltas: []Delta{{Key: Key{Hour: 7200, Path: "/a", ProxyID: "p"}}}}
	b.Deltas[0].Status[2] = 300
	data, _ := EncodeBatch(b)
	f.Add(data)
	f.Add([]byte(`{"id":"y","deltas":null}`))
	f.Add([]byte("PSB1\x01x\x00\x00\xff\xff\xff\xff\x0f"))
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := DecodeBatch(data)
		if err != nil {
			return
		}
		if b.ID == "" {
			t.Fatal("accepted empty id")
		}
		again, err := EncodeBatch(b)
		if err != nil {
			t.Fatal(err)
		}
		if back, err := DecodeBatch(again); err != nil || back.Events() != b.Events() || len(back.Deltas) != len(b.Deltas) {
			t.Fatalf("re-encode round trip: %v", err)
		}
		for _, d := range b.Deltas {
			if d.Path == "" || d.Path[0] != '/' || d.Hour%3600 != 0 {
				t.Fatalf("accepted bad delta %+v", d)
			}
		}
	})
}

func TestErrorMapping(t *testing.T) {
	err := Errorf(EPayloadTooLarge, "too big: %d", 3)
	if ErrorCode(err) != EPayloadTooLarge || HTTPStatus(ErrorCode(err)) != 413 || ErrorMessage(err) != "too big: 3" {
		t.Fatal(err)
	}
	if ErrorCode(ErrUnavailable) != EInternal || ErrorMessage(ErrUnavailable) != "internal error" {
		t.Fatal("internal errors must not leak")
	}
}
