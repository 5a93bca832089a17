package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/pathstats/pathstats"
)

// decodeBody runs a fresh decoder over body at testNow.
func decodeBody(body []byte, ndjson bool) (*decoder, error) {
	d := new(decoder)
	d.reset(testNow, 720*time.Hour)
	return d, d.decode(body, ndjson)
}

func TestDecodeFields(t *testing.T) {
	body := `{"timestamp":"2025-06-01T13:00:00+02:00","path":"/a\u00e9\ud83d\ude00\/b\"\\\u0041","method":"PATCH",` +
		`"status":2e2,"latencyMs":1.25,"proxyId":"edge_1.eu-west","clientIp":"2001:db8::1","unknown":[true,false,null,{"a":-0.5e-3}]}` + "\n" +
		`{"timestamp":1748779200123.5,"path":"/lone\ud800x","status":599.0,"path":"/dup"}` + "\n" +
		`{"status":100,"path":"/z","timestamp":null,"latencyMs":null,"method":"","proxyId":null,"clientIp":""}`
	d, err := decodeBody([]byte(body), true)
	if err != nil || d.probs.total != 0 {
		t.Fatalf("err %v, problems %+v", err, d.probs.list)
	}
	want := []pathstats.Event{
		{Time: time.Date(2025, 6, 1, 11, 0, 0, 0, time.UTC), Path: "/a\u00e9\U0001F600/b\"\\A", Method: "PATCH",
			Status: 200, LatencyMs: 1.25, ProxyID: "edge_1.eu-west", ClientIP: "2001:db8::1"},
		{Time: time.UnixMicro(1748779200123500).UTC(), Path: "/dup", Status: 599, ProxyID: "default"},
		{Path: "/z", Status: 100, ProxyID: "default"}, // no time: the request's, zero until batched
	}
	if len(d.events) != len(want) {
		t.Fatalf("got %d events", len(d.events))
	}
	for i := range want {
		if g, w := d.events[i], want[i]; !g.Time.Equal(w.Time) || g.Path != w.Path || g.Method != w.Method ||
			g.Status != w.Status || g.LatencyMs != w.LatencyMs || g.ProxyID != w.ProxyID || g.ClientIP != w.ClientIP {
			t.Errorf("event %d = %+v, want %+v", i, g, w)
		}
	}
}

func TestDecodeLoneSurrogate(t *testing.T) {
	d, err := decodeBody([]byte(`[{"path":"/\ud800\u0041","status":200}]`), false)
	if err != nil || d.probs.total != 0 {
		t.Fatalf("err %v, problems %+v", err, d.probs.list)
	}
	var ref []struct{ Path string }
	if err := json.Unmarshal([]byte(`[{"path":"/\ud800\u0041"}]`), &ref); err != nil {
		t.Fatal(err)
	}
	if d.events[0].Path != ref[0].Path || d.events[0].Path != "/\uFFFDA" {
		t.Fatalf("path %q, encoding/json %q", d.events[0].Path, ref[0].Path)
	}
}

func TestDecodeSyntax(t *testing.T) {
	bad := []string{
		`{`, `{"path"}`, `{"path":}`, `{"path":"/a",}`, `{"path":"/a"`, `{"path":"/a\x"}`, `{"path":"/a\u12"}`,
		`{"path":"/a` + "\t" + `"}`, `{"status":01}`, `{"status":1.}`, `{"status":-}`, `{"status":1e}`, `{"a":tru}`,
		`{"a":nul}`, `{"a":[1,]}`, `{"a":{"b" 1}}`, `{"a":[}`, `{'a':1}`, `{"a":1}}`, `{"a":"` + "\xff" + `"}`,
		`{"a":` + strings.Repeat("[", maxDepth+1) + strings.Repeat("]", maxDepth+1) + `}`,
	}
	for _, b := range bad {
		for _, ndjson := range []bool{true, false} {
			body := b
			if !ndjson {
				body = "[" + b + "]"
			}
			d, err := decodeBody([]byte(body), ndjson)
			if err == nil && !slices.ContainsFunc(d.probs.list, func(e EventError) bool { return e.syntax }) {
				t.Errorf("%q (ndjson %v): no syntax problem: %+v", body, ndjson, d.probs.list)
			}
		}
	}
}

func TestDecodeNDJSONKeepsGoing(t *testing.T) {
	body := "{\n" + `{"path":"/a","status":200}` + "\n" + `{"path":"/a","status":2000}` + "\n" + "[1]\n"
	d, err := decodeBody([]byte(body), true)
	if err != nil {
		t.Fatal(err)
	}
	got := fmt.Sprintf("%d %v %d %s %d", d.probs.list[0].Index, d.probs.list[0].syntax, d.probs.list[1].Index, d.probs.list[1].Field, d.probs.list[2].Index)
	if d.n != 4 || d.probs.total != 3 || got != "0 true 2 status 3" {
		t.Fatalf("n %d, problems %+v", d.n, d.probs.list)
	}
}

func TestDecoderReuse(t *testing.T) {
	d := new(decoder)
	d.reset(testNow, 0)
	if err := d.decode([]byte(`{"path":"/a","status":99}`), true); err != nil || d.probs.total != 1 {
		t.Fatalf("first: %v %+v", err, d.probs.list)
	}
	d.reset(testNow, 0)
	if err := d.decode([]byte(`{"path":"/b","status":200,"timestamp":"2025-05-03T00:00:00Z"}`), true); err != nil || d.probs.total != 0 {
		t.Fatalf("second: %v %+v", err, d.probs.list)
	}
	if d.n != 1 || len(d.events) != 1 || d.events[0].Path != "/b" {
		t.Fatalf("events %+v", d.events)
	}
}

func FuzzDecodeEvents(f *testing.F) {
	seeds := []string{
		`{"timestamp":"2025-06-01T12:00:00Z","path":"/a","method":"GET","status":200,"latencyMs":3.5,"proxyId":"p","clientIp":"10.0.0.1"}`,
		`[{"path":"/a","status":200},{"path":"/b\u0000","status":404,"x":[{"y":null}]}]`,
		`{"path":"/a","status":200}` + "\n\n" + `{"timestamp":1748779200000,"path":"/b","status":500}` + "\r\n",
		`{"path":"/\ud800","status":200.0,"latencyMs":1e-400}`,
		`{"path":"/a","status":"200"}`, `[1, "x", {}]`, `{"path":"/a","path":3,"status":200}`,
		"{\"path\":\"/\xff\",\"status\":200}", `[`, `]`, `{"a":[[[[[]]]]]}`, "",
	}
	for _, s := range seeds {
		f.Add([]byte(s), true)
		f.Add([]byte(s), false)
	}
	f.Fuzz(func(t *testing.T, body []byte, ndjson bool) {
		d, err := decodeBody(body, ndjson)
		if err != nil {
			if err != errTooManyEvents && pathstats.ErrorCode(err) != pathstats.EInvalidBody {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		if d.probs.total > 0 {
			if len(d.probs.list) == 0 || len(d.events) > d.n {
				t.Fatalf("problems %d listed %d, events %d of %d", d.probs.total, len(d.probs.list), len(d.events), d.n)
			}
			for _, p := range d.probs.list {
				if p.syntax && referenceValid(body, ndjson) {
					t.Fatalf("syntax problem %+v, but encoding/json accepts the body", p)
				}
			}
			return
		}
		if len(d.events) != d.n {
			t.Fatalf("%d events of %d", len(d.events), d.n)
		}
		for i, e := range d.events {
			checkEventInvariants(t, i, e)
		}
		compareWithReference(t, body, ndjson, d.events)
	})
}

func checkEventInvariants(t *testing.T, i int, e pathstats.Event) {
	t.Helper()
	switch {
	case e.Path == "" || e.Path[0] != '/' || len(e.Path) > MaxEventPathBytes || !utf8.ValidString(e.Path) ||
		pathstats.IndexControl(e.Path) >= 0:
		t.Fatalf("event %d: bad path %q", i, e.Path)
	case e.Status < 100 || e.Status > 599:
		t.Fatalf("event %d: status %d", i, e.Status)
	case e.LatencyMs < 0 || math.IsNaN(e.LatencyMs) || math.IsInf(e.LatencyMs, 0):
		t.Fatalf("event %d: latency %v", i, e.LatencyMs)
	case e.ProxyID == "" || len(e.ProxyID) > maxProxyIDLen || len(e.Method) > maxMethodLen:
		t.Fatalf("event %d: proxy %q method %q", i, e.ProxyID, e.Method)
	case !e.Time.IsZero() && (e.Time.After(testNow.Add(maxFutureSkew)) || e.Time.Before(testNow.Add(-720*time.Hour))):
		t.Fatalf("event %d: time %v", i, e.Time)
	}
}

// referenceValues decodes body with encoding/json into one map per event.
func referenceValues(body []byte, ndjson bool) ([]map[string]any, error) {
	decode := func(b []byte, v any) error {
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber()
		if err := dec.Decode(v); err != nil {
			return err
		}
		if dec.More() {
			return fmt.Errorf("trailing data")
		}
		return nil
	}
	var out []map[string]any
	if !ndjson {
		if len(bytes.TrimSpace(body)) == 0 {
			return nil, nil
		}
		return out, decode(body, &out)
	}
	for line := range bytes.SplitSeq(body, []byte{'\n'}) {
		if len(bytes.Trim(line, " \t\r")) == 0 {
			continue
		}
		var m map[string]any
		if err := decode(line, &m); err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

// referenceValid reports whether encoding/json takes body as valid JSON.
func referenceValid(body []byte, ndjson bool) bool {
	if !utf8.Valid(body) {
		return false
	}
	if !ndjson {
		return json.Valid(body)
	}
	for line := range bytes.SplitSeq(body, []byte{'\n'}) {
		if len(bytes.Trim(line, " \t\r")) > 0 && !json.Valid(line) {
			return false
		}
	}
	return true
}

// compareWithReference checks the decoded events against encoding/json.
func compareWithReference(t *testing.T, body []byte, ndjson bool, events []pathstats.Event) {
	t.Helper()
	if !utf8.Valid(body) {
		t.Fatal("accepted a body that is not valid UTF-8")
	}
	ref, err := referenceValues(body, ndjson)
	if err != nil {
		t.Fatalf("accepted a body encoding/json rejects: %v", err)
	}
	if len(ref) != len(events) {
		t.Fatalf("%d events, encoding/json %d", len(events), len(ref))
	}
	for i, m := range ref {
		e := events[i]
		if m["path"] != e.Path {
			t.Fatalf("event %d: path %q, encoding/json %q", i, e.Path, m["path"])
		}
		if n, ok := m["status"].(json.Number); !ok || mustFloat(t, n) != float64(e.Status) {
			t.Fatalf("event %d: status %d, encoding/json %v", i, e.Status, m["status"])
		}
		if n, ok := m["latencyMs"].(json.Number); ok && mustFloat(t, n) != e.LatencyMs {
			t.Fatalf("event %d: latency %v, encoding/json %v", i, e.LatencyMs, n)
		}
		for key, got := range map[string]string{"method": e.Method, "clientIp": e.ClientIP, "proxyId": e.ProxyID} {
			if s, ok := m[key].(string); ok && s != "" && s != got {
				t.Fatalf("event %d: %s %q, encoding/json %q", i, key, got, s)
			}
		}
		if s, ok := m["timestamp"].(string); ok {
			if ts, err := time.Parse(time.RFC3339Nano, s); err != nil || !ts.Equal(e.Time) {
				t.Fatalf("event %d: time %v, encoding/json %q", i, e.Time, s)
			}
		}
	}
}

func mustFloat(t *testing.T, n json.Number) float64 {
	f, err := n.Float64()
	if err != nil && !strings.Contains(err.Error(), "range") {
		t.Fatalf("number %q: %v", n, err)
	}
	return f
}

// benchNDJSON builds an NDJSON body of n realistic events.
func benchNDJSON(n int) []byte {
	var b bytes.Buffer
	methods := []string{"GET", "POST", "PUT", "DELETE"}
	for i := range n {
		fmt.Fprintf(&b, `{"timestamp":"2025-06-01T12:%02d:%02d.%03dZ","path":"/api/v1/users/%d/orders","method":%q,"status":%d,"latencyMs":%.2f,"proxyId":"api-%d","clientIp":"10.1.%d.%d"}`+"\n",
			i%30, i%60, i%1000, i%97, methods[i%4], []int{200, 200, 201, 404, 503}[i%5], float64(i%500)/7, i%3, i%256, i%200)
	}
	return b.Bytes()
}

// BenchmarkDecodeNDJSON decodes and validates a 1,000-event NDJSON body.
func BenchmarkDecodeNDJSON(b *testing.B) {
	body := benchNDJSON(1000)
	d := new(decoder)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		d.reset(testNow, 720*time.Hour)
		if err := d.decode(body, true); err != nil || d.probs.total != 0 || len(d.events) != 1000 {
			b.Fatalf("err %v, problems %+v", err, d.probs.list)
		}
	}
	b.ReportMetric(float64(b.N)*1000/b.Elapsed().Seconds(), "events/s")
}
