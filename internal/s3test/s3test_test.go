package s3test_test

import (
	"context"
	"testing"

	"gocloud.dev/blob"
	_ "gocloud.dev/blob/s3blob"
	"gocloud.dev/gcerrors"

	"github.com/pathstats/pathstats/internal/s3test"
)

// TestStart starts versitygw and checks the returned URL opens a working
// bucket with gocloud.dev/blob: write, read back, list, delete.
func TestStart(t *testing.T) {
	bucketURL := s3test.Start(t)
	ctx := context.Background()
	b, err := blob.OpenBucket(ctx, bucketURL)
	if err != nil {
		t.Fatalf("open %s: %v", bucketURL, err)
	}
	defer b.Close()
	if err := b.WriteAll(ctx, "dir/a.txt", []byte("hello"), nil); err != nil {
		t.Fatalf("write: %v", err)
	}
	got, err := b.ReadAll(ctx, "dir/a.txt")
	if err != nil || string(got) != "hello" {
		t.Fatalf("read back = %q, %v; want hello", got, err)
	}
	it := b.List(&blob.ListOptions{Prefix: "dir/"})
	obj, err := it.Next(ctx)
	if err != nil || obj.Key != "dir/a.txt" || obj.Size != 5 {
		t.Fatalf("list = %+v, %v; want dir/a.txt of 5 bytes", obj, err)
	}
	if err := b.Delete(ctx, "dir/a.txt"); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if _, err := b.ReadAll(ctx, "dir/a.txt"); gcerrors.Code(err) != gcerrors.NotFound {
		t.Fatalf("read after delete: %v, want NotFound", err)
	}
}
