package archive

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pathstats/pathstats"
)

// TestBucketFileBroken: a file bucket whose directory is gone is
// unavailable (not empty, not silently recreated), and errors name keys,
// never the local directory.
func TestBucketFileBroken(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "archive")
	b := openURL(t, "file://"+filepath.ToSlash(dir))
	if err := b.Put(ctx, "manifests/a.json", []byte("{}")); err != nil {
		t.Fatal(err)
	}
	// The file driver's errors name the local file (here: a key outside
	// the bucket, which it stats).
	_, err := b.Get(ctx, "../outside")
	if err == nil || strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), "<archive>") {
		t.Fatalf("error names the directory: %v", err)
	}

	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if objs, err := b.List(ctx, ""); !errors.Is(err, pathstats.ErrUnavailable) || strings.Contains(err.Error(), dir) {
		t.Fatalf("list with the directory gone: %v %v", objs, err)
	}
	if _, err := b.Get(ctx, "manifests/a.json"); !errors.Is(err, pathstats.ErrUnavailable) || errors.Is(err, pathstats.ErrNotFound) {
		t.Fatalf("get with the directory gone: %v", err)
	}
	if err := b.Put(ctx, "manifests/c.json", []byte("{}")); !errors.Is(err, pathstats.ErrUnavailable) {
		t.Fatalf("put with the directory gone: %v", err)
	}
	if err := b.Delete(ctx, "manifests/a.json"); !errors.Is(err, pathstats.ErrUnavailable) {
		t.Fatalf("delete with the directory gone: %v", err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("the directory was recreated: %v", err)
	}
}
