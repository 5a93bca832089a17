package nats

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pathstats/pathstats"
	"github.com/pathstats/pathstats/internal/kvtest"
)

func TestKVEmbedded(t *testing.T) {
	t.Parallel()
	s := startServer(t, EmbeddedOptions{StoreDir: t.TempDir()})
	nc := connect(t, s)
	kvtest.Run(t, "nats kv embedded (in-process connection)", func(t *testing.T) pathstats.KV {
		return openKV(t, nc, testKVConfig())
	})
}

// TestKVExternal runs the suite on the server named by PATHSTATS_TEST_NATS,
// a fresh bucket per case; it fails when that server cannot be reached.
func TestKVExternal(t *testing.T) {
	t.Parallel()
	url := os.Getenv(envTestNATS)
	if url == "" {
		t.Skip(envTestNATS + " not set")
	}
	nc, err := connectURL(testCtx(t), url)
	if err != nil {
		t.Fatalf("%s=%s: %v", envTestNATS, url, err)
	}
	t.Cleanup(nc.Close)
	kvtest.Run(t, "nats kv external "+url+" (server "+nc.ConnectedServerVersion()+")", func(t *testing.T) pathstats.KV {
		k, err := OpenKVURL(testCtx(t), url, testKVConfig())
		if err != nil {
			t.Fatalf("open kv %s: %v", url, err)
		}
		cleanupKV(t, nc, k)
		return k
	})
}

// testKVConfig names a bucket unique to the test.
func testKVConfig() KVConfig {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return KVConfig{Bucket: "pstest_" + hex.EncodeToString(b)}
}

func openKV(t *testing.T, nc *natsgo.Conn, cfg KVConfig) *KV {
	t.Helper()
	k, err := OpenKV(testCtx(t), nc, cfg)
	if err != nil {
		t.Fatalf("open kv: %v", err)
	}
	cleanupKV(t, nc, k)
	return k
}

// cleanupKV closes k and deletes its bucket (through nc) at cleanup.
func cleanupKV(t *testing.T, nc *natsgo.Conn, k *KV) {
	t.Cleanup(func() {
		_ = k.Close()
		if !nc.IsConnected() {
			return
		}
		// Best effort, only logged (see cleanupQueue).
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := deleteBucket(ctx, nc, k.Bucket()); err != nil && !errors.Is(err, jetstream.ErrBucketNotFound) {
			t.Logf("delete bucket %s: %v", k.Bucket(), err)
		}
	})
}

func deleteBucket(ctx context.Context, nc *natsgo.Conn, bucket string) error {
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	return js.DeleteKeyValue(ctx, bucket)
}

var natsKeyRe = regexp.MustCompile(`^[-/_=.a-zA-Z0-9]+$`)

// checkKeyCodec checks that key encodes to a valid NATS key that decodes
// back to key.
func checkKeyCodec(t *testing.T, key string) {
	t.Helper()
	ek, err := encodeKey(key)
	if key == "" {
		if err == nil {
			t.Fatalf("encodeKey(\"\") = %q, want an error", ek)
		}
		return
	}
	if err != nil {
		t.Fatalf("encodeKey(%q): %v", key, err)
	}
	if !natsKeyRe.MatchString(ek) || ek[0] == '.' || ek[len(ek)-1] == '.' || strings.Contains(ek, "..") {
		t.Fatalf("encodeKey(%q) = %q, not a valid NATS key", key, ek)
	}
	back, err := decodeKey(ek)
	if err != nil || back != key {
		t.Fatalf("decodeKey(encodeKey(%q) = %q) = (%q, %v)", key, ek, back, err)
	}
}

func TestKVKeyEncoding(t *testing.T) {
	want := map[string]string{
		"snapshot:config":            "snapshot.config",
		"snapshot:v12:chunk:0":       "snapshot.v12.chunk.0",
		"migration:paths-api-config": "migration.paths-api-config",
		"lease:snapshotter":          "lease.snapshotter",
		"a.b":                        "a=2Eb",
		"a=b":                        "a=3Db",
		"a::b":                       "a.=3Ab",
		":a":                         "=3Aa",
		"a:":                         "a=3A",
		":":                          "=3A",
		"a b*>":                      "a=20b=2A=3E",
		"ü":                          "=C3=BC",
	}
	for key, ek := range want {
		if got, _ := encodeKey(key); got != ek {
			t.Errorf("encodeKey(%q) = %q, want %q", key, got, ek)
		}
		checkKeyCodec(t, key)
	}
	for _, bad := range []string{"a=", "a=4", "a=ZZ"} {
		if got, err := decodeKey(bad); err == nil {
			t.Errorf("decodeKey(%q) = %q, want an error", bad, got)
		}
	}
}

func FuzzKVKeyEncoding(f *testing.F) {
	for _, s := range []string{"", "a", ":", "::", "a:b", "a::b:", ".=:", "snapshot:v1:chunk:0", "\x00\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, key string) {
		checkKeyCodec(t, key)
		// The listing filter of every prefix of key must match key.
		ek, _ := encodeKey(key)
		for i := 0; i <= len(key); i++ {
			filter := keysFilter(key[:i])
			if ek != "" && !subjectMatch(filter, ek) {
				t.Fatalf("keysFilter(%q) = %q does not match %q (encoded %q)", key[:i], filter, key, ek)
			}
		}
	})
}

// subjectMatch reports whether a subject filter ending in ">" or without
// wildcards matches subject.
func subjectMatch(filter, subject string) bool {
	if p, ok := strings.CutSuffix(filter, ">"); ok {
		return strings.HasPrefix(subject, p) && len(subject) > len(p)
	}
	return filter == subject
}

func TestKVKeysFilter(t *testing.T) {
	want := map[string]string{
		"":                     ">",
		"s":                    ">",
		"snapshot":             ">",
		"snapshot:":            ">",
		"snapshot:v":           "snapshot.>",
		"snapshot:v12:":        "snapshot.>",
		"snapshot:v12:c":       "snapshot.v12.>",
		"snapshot:v12:chunk:0": "snapshot.v12.chunk.>",
		"a::b":                 "a.>",
	}
	for prefix, f := range want {
		if got := keysFilter(prefix); got != f {
			t.Errorf("keysFilter(%q) = %q, want %q", prefix, got, f)
		}
	}
}

func TestKVConfigDefaults(t *testing.T) {
	cfg, err := KVConfig{}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Bucket != "pathstats" || cfg.Replicas != 1 || cfg.History != 1 || cfg.MaxValueSize != 1<<20 {
		t.Fatalf("defaults = %+v", cfg)
	}
	for _, bad := range []KVConfig{{History: 65}, {History: -1}, {MaxValueSize: pathstats.MaxKVValue - 1}} {
		if _, err := bad.withDefaults(); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

// TestKVOpenTwice: opening an existing bucket keeps its data.
func TestKVOpenTwice(t *testing.T) {
	t.Parallel()
	s := startServer(t, EmbeddedOptions{StoreDir: t.TempDir()})
	nc := connect(t, s)
	cfg := testKVConfig()
	a := openKV(t, nc, cfg)
	ctx := testCtx(t)
	if _, err := a.Put(ctx, "snapshot:config", []byte("x")); err != nil {
		t.Fatal(err)
	}
	b := openKV(t, nc, cfg)
	e, err := b.Get(ctx, "snapshot:config")
	if err != nil || string(e.Value) != "x" {
		t.Fatalf("get through second open = (%+v, %v)", e, err)
	}
}

func TestKVValueTooLarge(t *testing.T) {
	t.Parallel()
	s := startServer(t, EmbeddedOptions{StoreDir: t.TempDir()})
	k := openKV(t, connect(t, s), testKVConfig())
	_, err := k.Put(testCtx(t), "big", make([]byte, DefaultKVMaxValueSize+1))
	if err == nil || errors.Is(err, pathstats.ErrConflict) || errors.Is(err, pathstats.ErrUnavailable) {
		t.Fatalf("put above max value size: %v, want a plain error", err)
	}
}

// TestKVUnavailable: with the server gone every call fails with
// ErrUnavailable, and open watches close when the KV closes.
func TestKVUnavailable(t *testing.T) {
	t.Parallel()
	s := startServer(t, EmbeddedOptions{StoreDir: t.TempDir()})
	nc := connect(t, s)
	k, err := OpenKV(testCtx(t), nc, testKVConfig())
	if err != nil {
		t.Fatal(err)
	}
	ch, err := k.Watch(testCtx(t), "w")
	if err != nil {
		t.Fatal(err)
	}
	s.Shutdown()
	checks := map[string]func(ctx context.Context) error{
		"ping": k.Ping,
		"get":  func(ctx context.Context) error { _, err := k.Get(ctx, "a:b"); return err },
		"put":  func(ctx context.Context) error { _, err := k.Put(ctx, "a:b", []byte("x")); return err },
		"update": func(ctx context.Context) error {
			_, err := k.Update(ctx, "a:b", []byte("x"), 1)
			return err
		},
		"delete": func(ctx context.Context) error { return k.Delete(ctx, "a:b") },
		"keys":   func(ctx context.Context) error { _, err := k.Keys(ctx, "a:"); return err },
	}
	for op, fn := range checks {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		start := time.Now()
		err := fn(ctx)
		cancel()
		if !errors.Is(err, pathstats.ErrUnavailable) {
			t.Errorf("%s with the server down: %v, want ErrUnavailable", op, err)
		}
		t.Logf("%s failed after %s: %v", op, time.Since(start).Round(time.Millisecond), err)
	}
	_ = k.Close()
	select {
	case _, ok := <-ch:
		if ok {
			t.Fatal("watch sent an entry, want it closed")
		}
	case <-time.After(time.Minute):
		t.Fatal("watch still open after close")
	}
}

// TestKVPurgeDeletes: old delete markers go, values and newer writes stay,
// and a purged key can be created again.
func TestKVPurgeDeletes(t *testing.T) {
	t.Parallel()
	s := startServer(t, EmbeddedOptions{StoreDir: t.TempDir()})
	cfg := testKVConfig()
	cfg.CompactInterval = -1
	k := openKV(t, connect(t, s), cfg)
	ctx := testCtx(t)
	mustKV(t, k.Put, ctx, "keep", "v")
	for _, key := range []string{"gone:1", "gone:2"} {
		mustKV(t, k.Put, ctx, key, "v")
		if err := k.Delete(ctx, key); err != nil {
			t.Fatal(err)
		}
	}
	n, err := k.PurgeDeletes(ctx, time.Hour)
	if err != nil || n != 0 {
		t.Fatalf("purge of markers younger than 1h = (%d, %v), want 0", n, err)
	}
	n, err = k.PurgeDeletes(ctx, 0)
	if err != nil || n != 2 {
		t.Fatalf("purge = (%d, %v), want 2", n, err)
	}
	st, err := k.kv.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Values() != 1 {
		t.Fatalf("bucket holds %d messages after purge, want 1", st.Values())
	}
	if _, err := k.Create(ctx, "gone:1", []byte("again")); err != nil {
		t.Fatalf("create after purge: %v", err)
	}
	keys, err := k.Keys(ctx, "")
	if err != nil || strings.Join(keys, ",") != "gone:1,keep" {
		t.Fatalf("keys = (%q, %v), want [gone:1 keep]", keys, err)
	}
}

func mustKV(t *testing.T, put func(context.Context, string, []byte) (uint64, error), ctx context.Context, key, value string) {
	t.Helper()
	if _, err := put(ctx, key, []byte(value)); err != nil {
		t.Fatalf("put %q: %v", key, err)
	}
}
