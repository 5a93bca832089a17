package archive

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	itest "github.com/pathstats/pathstats/internal/testutil"
)

// TestStageFailureLogged: archive and restore errors counted in
// errors_total{stage} are logged with their stage and error (a failed
// restore was counted and returned, but never logged).
func TestStageFailureLogged(t *testing.T) {
	ctx := context.Background()
	store := openStore(t)
	clk := &clock{t: time.Now()}
	th := hoursAt(clk.Now())
	seed(t, store, th, 5)
	log, buf := itest.NewLogger()
	fs := &faultyStore{ObjectStore: openFileBucket(t), fail: on("put", partsPrefix)}
	a, err := New(Config{Store: store, Bucket: fs, Retention: testRetention, Now: clk.Now, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.RunOnce(ctx); !errors.Is(err, errInjected) {
		t.Fatalf("run = %v, want the injected failure", err)
	}
	if _, err := a.RunOnce(ctx); err != nil {
		t.Fatalf("second run: %v", err)
	}
	fs.mu.Lock()
	fs.fail = on("delete", partsPrefix)
	fs.mu.Unlock()
	if _, err := a.Restore(ctx, th.old[0], th.recent, time.Hour); !errors.Is(err, errInjected) {
		t.Fatalf("restore = %v, want the injected failure", err)
	}
	for _, stage := range []string{stageDelete, stageUpload} {
		if n := testutil.ToFloat64(a.m.errors.WithLabelValues(stage)); n != 1 {
			t.Fatalf("%s errors = %v, want 1", stage, n)
		}
		lines := buf.Lines(`msg="archive stage failed"`, "stage="+stage)
		if len(lines) != 1 || !strings.Contains(lines[0], "injected failure") || !strings.Contains(lines[0], "level=WARN") {
			t.Fatalf("want one %s warning with the error; log:\n%s", stage, buf.String())
		}
	}
}
