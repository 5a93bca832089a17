package archive

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"gocloud.dev/blob"
	"gocloud.dev/blob/fileblob"
	_ "gocloud.dev/blob/s3blob" // registers s3:// on blob.DefaultMux
	"gocloud.dev/gcerrors"

	"github.com/pathstats/pathstats"
)

// Bucket is a pathstats.ObjectStore on a gocloud.dev/blob bucket.
type Bucket struct {
	b   *blob.Bucket
	url string // for error messages, without query parameters
	dir string // the directory of a file:// bucket, else ""
}

var _ pathstats.ObjectStore = (*Bucket)(nil)

// OpenBucket opens the archive bucket at rawURL:
//
//   - file:///abs/dir: a directory (created when missing); objects are
//     written to a temporary file next to their final name and renamed,
//     without metadata sidecar files. Query parameters of fileblob are
//     honoured.
//   - s3://bucket?endpoint=http://127.0.0.1:9000&region=us-east-1&use_path_style=true:
//     an S3-compatible bucket (AWS SDK v2; credentials from the standard
//     AWS environment variables or files). Query parameters are those of
//     gocloud.dev/blob/s3blob and gocloud.dev/aws.V2ConfigFromURLParams.
func OpenBucket(ctx context.Context, rawURL string) (pathstats.ObjectStore, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("open archive bucket: %w", err)
	}
	display := u.Scheme + "://" + u.Host + u.Path
	dir := ""
	switch u.Scheme {
	case fileblob.Scheme:
		if (u.Host != "" && u.Host != "localhost") || !strings.HasPrefix(u.Path, "/") {
			return nil, fmt.Errorf("open archive bucket %s: want file:///absolute/dir", display)
		}
		q := u.Query()
		setDefault(q, "create_dir", "true")
		setDefault(q, "no_tmp_dir", "true")
		setDefault(q, "metadata", "skip")
		u.RawQuery = q.Encode()
		dir = filepath.Clean(filepath.FromSlash(u.Path))
	case "s3":
	default:
		return nil, fmt.Errorf("open archive bucket %s: unsupported scheme %q (want file or s3)", display, u.Scheme)
	}
	b, err := blob.OpenBucket(ctx, u.String())
	if err != nil {
		return nil, fmt.Errorf("open archive bucket %s: %w", display, err)
	}
	return &Bucket{b: b, url: display, dir: dir}, nil
}

// setDefault sets q[key] to value unless it is set.
func setDefault(q url.Values, key, value string) {
	if q.Get(key) == "" {
		q.Set(key, value)
	}
}

// String returns the bucket URL without query parameters.
func (b *Bucket) String() string { return b.url }

// Put writes an object in full; it becomes visible only once complete.
func (b *Bucket) Put(ctx context.Context, key string, data []byte) error {
	if err := b.reachable(); err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	if err := b.b.WriteAll(ctx, key, data, nil); err != nil {
		return fmt.Errorf("put %s: %w", key, b.redact(err))
	}
	return nil
}

// errNoDir reports that the directory of a file:// bucket is gone (deleted,
// or a volume not mounted): the archive is unreachable, not empty.
var errNoDir = fmt.Errorf("the archive directory is missing or not a directory: %w", pathstats.ErrUnavailable)

// reachable checks that the directory of a file:// bucket still exists:
// the file driver would otherwise list a missing directory as empty and
// recreate it on the next write.
func (b *Bucket) reachable() error {
	if b.dir == "" {
		return nil
	}
	if st, err := os.Stat(b.dir); err != nil || !st.IsDir() {
		return errNoDir
	}
	return nil
}

// redact replaces the local directory of a file:// bucket in err's text,
// so that errors (which reach API answers) name keys, not file system
// paths; errors.Is and errors.As still see err.
func (b *Bucket) redact(err error) error {
	if err == nil || b.dir == "" || !strings.Contains(err.Error(), b.dir) {
		return err
	}
	return &redacted{msg: strings.ReplaceAll(err.Error(), b.dir, "<archive>"), err: err}
}

// redacted is an error with a rewritten text.
type redacted struct {
	msg string
	err error
}

func (r *redacted) Error() string { return r.msg }
func (r *redacted) Unwrap() error { return r.err }

// Get opens an object; a missing key gives an error matching
// pathstats.ErrNotFound.
func (b *Bucket) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	r, err := b.b.NewReader(ctx, key, nil)
	if err != nil {
		if err := b.reachable(); err != nil {
			return nil, fmt.Errorf("get %s: %w", key, err)
		}
		if gcerrors.Code(err) == gcerrors.NotFound {
			return nil, fmt.Errorf("get %s: %w", key, errors.Join(pathstats.ErrNotFound, b.redact(err)))
		}
		return nil, fmt.Errorf("get %s: %w", key, b.redact(err))
	}
	return &redactingReader{ReadCloser: r, b: b}, nil
}

// List returns the keys under prefix (recursively), in key order.
func (b *Bucket) List(ctx context.Context, prefix string) ([]pathstats.ObjectInfo, error) {
	if err := b.reachable(); err != nil {
		return nil, fmt.Errorf("list %s: %w", prefix, err)
	}
	it := b.b.List(&blob.ListOptions{Prefix: prefix})
	var out []pathstats.ObjectInfo
	for {
		obj, err := it.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", prefix, b.redact(err))
		}
		if obj.IsDir {
			continue
		}
		out = append(out, pathstats.ObjectInfo{Key: obj.Key, Size: obj.Size, ModTime: obj.ModTime})
	}
	slices.SortFunc(out, func(a, b pathstats.ObjectInfo) int { return strings.Compare(a.Key, b.Key) })
	return out, nil
}

// Delete removes an object; a missing key is not an error.
func (b *Bucket) Delete(ctx context.Context, key string) error {
	if err := b.reachable(); err != nil {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	if err := b.b.Delete(ctx, key); err != nil && gcerrors.Code(err) != gcerrors.NotFound {
		return fmt.Errorf("delete %s: %w", key, b.redact(err))
	}
	return nil
}

// Close releases the bucket.
func (b *Bucket) Close() error {
	if err := b.b.Close(); err != nil {
		return fmt.Errorf("close bucket %s: %w", b.url, err)
	}
	return nil
}

// redactingReader redacts the errors of an object reader.
type redactingReader struct {
	io.ReadCloser
	b *Bucket
}

func (r *redactingReader) Read(p []byte) (int, error) {
	n, err := r.ReadCloser.Read(p)
	if err != nil && err != io.EOF {
		err = r.b.redact(err)
	}
	return n, err
}
