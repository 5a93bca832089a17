package legacy

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/pathstats/pathstats"
)

// TestAnswersLeaveOutUnkeptFields: the legacy answers (the canary's
// do-legacy source and the shadow's view page) carry no statusClasses and
// no latency, the legacy system keeps neither; what it keeps is there.
func TestAnswersLeaveOutUnkeptFields(t *testing.T) {
	s := openSys(t, t.TempDir(), func() time.Time { return t0 }, nil)
	observeAll(s, []event{{"p1", "/a", 200, t0}, {"p1", "/a", 404, t0}, {"p1", "/a", 503, t0}}, 1)
	src := s.PathsSource().(*pathsSource)
	q := pathstats.PathQuery{Page: 1, Limit: 50}
	direct, err := src.Paths(testCtx(t), q)
	if err != nil {
		t.Fatal(err)
	}
	_, page, err := src.ShadowView(testCtx(t), time.Hour)
	if err != nil || page == nil {
		t.Fatalf("shadow view: %v", err)
	}
	for name, res := range map[string][]byte{"paths": mustJSON(t, direct.Items), "shadow": mustJSON(t, page(q).Items)} {
		var items []map[string]any
		if err := json.Unmarshal(res, &items); err != nil {
			t.Fatal(err)
		}
		if len(items) != 1 {
			t.Fatalf("%s: %s", name, res)
		}
		it := items[0]
		for _, k := range []string{"statusClasses", "latency"} {
			if _, ok := it[k]; ok {
				t.Errorf("%s: %s present in %s", name, k, res)
			}
		}
		if it["path"] != "/a" || it["requestCount"] != 3.0 || it["errorCount"] != 1.0 || it["clientErrorCount"] != 1.0 || it["lastAccessed"] != t0.Format(time.RFC3339Nano) {
			t.Errorf("%s: kept fields %s", name, res)
		}
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
