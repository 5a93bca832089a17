package sqlite

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/pathstats/pathstats/internal/storetest"
)

// openArchiveBench opens an empty store with the real clock.
func openArchiveBench(b *testing.B) storetest.ArchiveBenchStore {
	b.Helper()
	s, err := Open(context.Background(), filepath.Join(b.TempDir(), "bench.db"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

func BenchmarkRestoreArchived(b *testing.B) { storetest.BenchRestoreArchived(b, openArchiveBench) }
func BenchmarkRemoveArchived(b *testing.B)  { storetest.BenchRemoveArchived(b, openArchiveBench) }
