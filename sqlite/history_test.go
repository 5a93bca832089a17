package sqlite

import (
	"context"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/pathstats/pathstats"
)

func TestConfigHistoryPaging(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clock := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	path := filepath.Join(t.TempDir(), "pathstats.db")
	s := mustOpen(t, path, Options{Now: func() time.Time { return clock }})

	if got, total, err := s.ConfigChanges(ctx, 0, 10); err != nil || len(got) != 0 || total != 0 {
		t.Fatalf("empty history: %v, %d, %v", got, total, err)
	}
	var want []pathstats.ConfigChange
	for i := range 5 {
		c := pathstats.ConfigChange{
			At:     time.Date(2025, 3, 1, 10, i, 0, 123e6, time.UTC),
			Actor:  "admin",
			Source: "manual",
			Reason: "step",
			Before: pathstats.MigrationConfig{NewAPIPercentage: float64(i), ForceNewAPIIPs: []string{}, ForceOldAPIIPs: []string{}, Version: uint64(i)},
			After: pathstats.MigrationConfig{NewAPIPercentage: float64(i + 1), ForceNewAPIIPs: []string{"10.0.0.1"},
				ForceOldAPIIPs: []string{"192.168.0.0/16"}, EnableComparison: true, UpdatedAt: "2025-03-01T10:00:00Z", Version: uint64(i + 1)},
		}
		if i == 4 {
			c.At = time.Time{} // takes the store's clock
			c.Source = "auto-rollback"
		}
		id, err := s.AppendConfigChange(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		if id != int64(i+1) {
			t.Fatalf("id %d, want %d", id, i+1)
		}
		c.ID = id
		if c.At.IsZero() {
			c.At = clock
		}
		want = append(want, c)
	}

	page, total, err := s.ConfigChanges(ctx, 0, 2)
	if err != nil {
		t.Fatal(err)
	}
	if total != 5 || !reflect.DeepEqual(page, []pathstats.ConfigChange{want[4], want[3]}) {
		t.Fatalf("first page (total %d):\n got %+v\nwant %+v", total, page, []pathstats.ConfigChange{want[4], want[3]})
	}
	page, _, err = s.ConfigChanges(ctx, 4, 2)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(page, []pathstats.ConfigChange{want[2], want[1]}) {
		t.Fatalf("second page:\n got %+v", page)
	}
	page, _, err = s.ConfigChanges(ctx, 2, 2)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(page, []pathstats.ConfigChange{want[0]}) {
		t.Fatalf("last page:\n got %+v", page)
	}
	if page[0].At != time.Date(2025, 3, 1, 10, 0, 0, 123e6, time.UTC) {
		t.Errorf("at %v", page[0].At)
	}
	if page, total, _ := s.ConfigChanges(ctx, 1, 10); len(page) != 0 || total != 5 {
		t.Errorf("before first: %d entries, total %d", len(page), total)
	}

	// Persists across a reopen.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = mustOpen(t, path, Options{})
	defer s.Close()
	page, total, err = s.ConfigChanges(ctx, 0, 200)
	if err != nil {
		t.Fatal(err)
	}
	if total != 5 || len(page) != 5 || page[0].Source != "auto-rollback" || !page[0].At.Equal(clock) {
		t.Fatalf("after reopen: total %d, %+v", total, page)
	}
}
