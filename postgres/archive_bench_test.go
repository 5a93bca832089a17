package postgres

import (
	"testing"

	"github.com/pathstats/pathstats/internal/storetest"
)

// openArchiveBench opens an empty store (real clock, fresh schema).
func openArchiveBench(b *testing.B) storetest.ArchiveBenchStore {
	b.Helper()
	s := openTest(b, testURL(b), nil)
	b.Cleanup(func() { s.Close() })
	return s
}

func BenchmarkRestoreArchived(b *testing.B) { storetest.BenchRestoreArchived(b, openArchiveBench) }
func BenchmarkRemoveArchived(b *testing.B)  { storetest.BenchRemoveArchived(b, openArchiveBench) }
