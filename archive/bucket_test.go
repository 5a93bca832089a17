package archive

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/pathstats/pathstats"
	"github.com/pathstats/pathstats/internal/s3test"
)

func TestBucketFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new", "archive")
	b := openURL(t, "file://"+filepath.ToSlash(dir))
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("directory not created: %v", err)
	}
	checkBucket(t, b)
	// No metadata sidecars or temporary files are left next to objects.
	entries, err := os.ReadDir(filepath.Join(dir, "a"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !e.IsDir() && filepath.Ext(e.Name()) != ".txt" {
			t.Fatalf("unexpected file %s in the bucket directory", e.Name())
		}
	}
}

func TestBucketS3(t *testing.T) {
	checkBucket(t, openURL(t, s3test.Start(t)))
}

// checkBucket exercises the ObjectStore contract.
func checkBucket(t *testing.T, b pathstats.ObjectStore) {
	t.Helper()
	ctx := context.Background()
	for _, k := range []string{"a/2.txt", "a/1.txt", "a/b/3.txt", "c.txt"} {
		if err := b.Put(ctx, k, []byte("data:"+k)); err != nil {
			t.Fatalf("put %s: %v", k, err)
		}
	}
	got, err := readAll(t, b, "a/b/3.txt")
	if err != nil || string(got) != "data:a/b/3.txt" {
		t.Fatalf("get = %q, %v", got, err)
	}
	if err := b.Put(ctx, "a/1.txt", []byte("replaced")); err != nil {
		t.Fatal(err)
	}
	if got, err := readAll(t, b, "a/1.txt"); err != nil || string(got) != "replaced" {
		t.Fatalf("get after overwrite = %q, %v", got, err)
	}
	objs, err := b.List(ctx, "a/")
	if err != nil {
		t.Fatal(err)
	}
	var ks []string
	for _, o := range objs {
		ks = append(ks, o.Key)
		if o.Size <= 0 || o.ModTime.IsZero() {
			t.Fatalf("object info %+v lacks size or time", o)
		}
	}
	if want := []string{"a/1.txt", "a/2.txt", "a/b/3.txt"}; !slices.Equal(ks, want) {
		t.Fatalf("list a/ = %v, want %v", ks, want)
	}
	if _, err := b.Get(ctx, "a/missing"); !errors.Is(err, pathstats.ErrNotFound) {
		t.Fatalf("get missing: %v, want ErrNotFound", err)
	}
	if err := b.Delete(ctx, "a/2.txt"); err != nil {
		t.Fatal(err)
	}
	if err := b.Delete(ctx, "a/2.txt"); err != nil {
		t.Fatalf("delete missing: %v", err)
	}
	if _, err := b.Get(ctx, "a/2.txt"); !errors.Is(err, pathstats.ErrNotFound) {
		t.Fatalf("get deleted: %v, want ErrNotFound", err)
	}
	if objs, err := b.List(ctx, "nothing/"); err != nil || len(objs) != 0 {
		t.Fatalf("list empty prefix = %v, %v", objs, err)
	}
}

func TestOpenBucketRejects(t *testing.T) {
	for _, u := range []string{"gs://bucket", "file://relative/dir", "file://", "::bad"} {
		if b, err := OpenBucket(context.Background(), u); err == nil {
			b.Close()
			t.Fatalf("OpenBucket(%q) accepted", u)
		}
	}
}
