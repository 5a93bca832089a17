package redis

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/pathstats/pathstats"
	"github.com/pathstats/pathstats/internal/kvtest"
)

// envTestRedis names the Redis server the backend tests run on
// (redis://host:port/db). Unset, they skip; set and unreachable, they fail.
const envTestRedis = "PATHSTATS_TEST_REDIS"

// quietLogger drops go-redis's own log lines (dial failures the tests
// cause on purpose).
type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}

func TestMain(m *testing.M) {
	goredis.SetLogger(quietLogger{})
	os.Exit(m.Run())
}

func testURL(t *testing.T) string {
	t.Helper()
	url := os.Getenv(envTestRedis)
	if url == "" {
		t.Skip(envTestRedis + " not set")
	}
	return url
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// testPrefix is a key prefix unique to the test.
func testPrefix() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return "pstest:" + hex.EncodeToString(b) + ":"
}

// openTest opens a KV with a fresh prefix on the test server; at cleanup
// it closes the KV and deletes every key under the prefix.
func openTest(t *testing.T, url string, opts Options) *KV {
	t.Helper()
	if opts.Prefix == "" {
		opts.Prefix = testPrefix()
	}
	k, err := Open(testCtx(t), url, opts)
	if err != nil {
		t.Fatalf("%s=%s: open: %v", envTestRedis, url, err)
	}
	t.Cleanup(func() {
		_ = k.Close()
		if _, err := deletePrefix(url, opts.Prefix); err != nil {
			t.Logf("delete keys %s*: %v", opts.Prefix, err)
		}
	})
	return k
}

// deletePrefix removes every key starting with prefix and returns how many.
func deletePrefix(url, prefix string) (int, error) {
	ro, err := goredis.ParseURL(url)
	if err != nil {
		return 0, err
	}
	c := goredis.NewClient(ro)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n := 0
	it := c.Scan(ctx, 0, globEscape(prefix)+"*", scanCount).Iterator()
	for it.Next(ctx) {
		if err := c.Unlink(ctx, it.Val()).Err(); err != nil {
			return n, err
		}
		n++
	}
	return n, it.Err()
}

func TestKV(t *testing.T) {
	t.Parallel()
	url := testURL(t)
	probe := openTest(t, url, Options{})
	info, _ := probe.client.Info(testCtx(t), "server").Result()
	version := "unknown"
	if i := indexOf(info, "redis_version:"); i >= 0 {
		version = firstLine(info[i+len("redis_version:"):])
	}
	kvtest.Run(t, "redis "+url+" (server "+version+")", func(t *testing.T) pathstats.KV {
		return openTest(t, url, Options{PollInterval: 20 * time.Millisecond})
	})
}

// TestKVDefaultPoll runs the watch cases' timing with the default poll
// interval, which must still meet the suite's one-second wait.
func TestKVWatchDefaultPoll(t *testing.T) {
	t.Parallel()
	k := openTest(t, testURL(t), Options{})
	if k.opts.PollInterval != DefaultPollInterval {
		t.Fatalf("poll interval = %s, want %s", k.opts.PollInterval, DefaultPollInterval)
	}
	ctx := testCtx(t)
	ch, err := k.Watch(ctx, "w")
	if err != nil {
		t.Fatal(err)
	}
	rev, err := k.Put(ctx, "w", []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	select {
	case e := <-ch:
		if e.Revision != rev || string(e.Value) != "x" {
			t.Fatalf("watch sent %+v, want rev %d", e, rev)
		}
	case <-time.After(time.Minute):
		t.Fatal("no watch entry within 1m")
	}
	t.Logf("change seen after %s", time.Since(start).Round(time.Millisecond))
}

// TestKVPrefixIsolation: two stores on one server with different prefixes
// (one a prefix of the other, one with glob characters) never see each
// other's keys.
func TestKVPrefixIsolation(t *testing.T) {
	t.Parallel()
	url := testURL(t)
	base := testPrefix()
	a := openTest(t, url, Options{Prefix: base + "a"})
	b := openTest(t, url, Options{Prefix: base + "a*"})
	ctx := testCtx(t)
	if _, err := a.Put(ctx, "x", []byte("a")); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Put(ctx, "y", []byte("b")); err != nil {
		t.Fatal(err)
	}
	for name, k := range map[string]*KV{"a": a, "b": b} {
		keys, err := k.Keys(ctx, "")
		if err != nil || len(keys) != 1 {
			t.Fatalf("%s: keys = (%q, %v), want one key", name, keys, err)
		}
	}
	if _, err := a.Get(ctx, "y"); !errors.Is(err, pathstats.ErrNotFound) {
		t.Fatalf("a sees b's key: %v", err)
	}
}

// TestKVWatchClosesOnClose: open watches end when the KV closes, and
// calls after Close fail.
func TestKVWatchClosesOnClose(t *testing.T) {
	t.Parallel()
	k := openTest(t, testURL(t), Options{})
	ch, err := k.Watch(testCtx(t), "w")
	if err != nil {
		t.Fatal(err)
	}
	if err := k.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case _, ok := <-ch:
		if ok {
			t.Fatal("watch sent an entry, want it closed")
		}
	case <-time.After(time.Minute):
		t.Fatal("watch still open after close")
	}
	if _, err := k.Watch(testCtx(t), "w"); err == nil {
		t.Fatal("watch after close succeeded")
	}
	if _, err := k.Get(testCtx(t), "w"); !errors.Is(err, pathstats.ErrUnavailable) {
		t.Fatalf("get after close: %v, want ErrUnavailable", err)
	}
}

// TestOpenClosedPort: Open on a port nothing listens on fails quickly with
// ErrUnavailable.
func TestOpenClosedPort(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	start := time.Now()
	k, err := Open(testCtx(t), "redis://"+addr+"/0", Options{})
	elapsed := time.Since(start)
	if err == nil {
		k.Close()
		t.Fatal("open on a closed port succeeded")
	}
	if !errors.Is(err, pathstats.ErrUnavailable) {
		t.Fatalf("open: %v, want ErrUnavailable", err)
	}
	if elapsed > 3*time.Second {
		t.Fatalf("open took %s, want a quick failure", elapsed)
	}
	t.Logf("open failed after %s: %v", elapsed.Round(time.Millisecond), err)
}

func TestOpenBadURL(t *testing.T) {
	_, err := Open(testCtx(t), "http://127.0.0.1:6379", Options{})
	if err == nil || errors.Is(err, pathstats.ErrUnavailable) {
		t.Fatalf("open with a bad url: %v, want a plain error", err)
	}
}

// TestKVUnavailable: with the server unreachable (a proxy in front of it
// is cut) every call fails with ErrUnavailable, and a watch keeps polling
// and reports changes made after the server is back.
func TestKVUnavailable(t *testing.T) {
	t.Parallel()
	url := testURL(t)
	ro, err := goredis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	p := startProxy(t, ro.Addr)
	ro.Addr = p.addr()
	prefix := testPrefix()
	k, err := Open(testCtx(t), "redis://"+p.addr()+"/"+itoa(ro.DB), Options{Prefix: prefix, PollInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = k.Close()
		_, _ = deletePrefix(url, prefix)
	})
	ch, err := k.Watch(testCtx(t), "w")
	if err != nil {
		t.Fatal(err)
	}
	p.cut()
	checks := map[string]func(ctx context.Context) error{
		"ping":   k.Ping,
		"get":    func(ctx context.Context) error { _, err := k.Get(ctx, "a:b"); return err },
		"put":    func(ctx context.Context) error { _, err := k.Put(ctx, "a:b", []byte("x")); return err },
		"create": func(ctx context.Context) error { _, err := k.Create(ctx, "a:b", []byte("x")); return err },
		"update": func(ctx context.Context) error {
			_, err := k.Update(ctx, "a:b", []byte("x"), 1)
			return err
		},
		"delete": func(ctx context.Context) error { return k.Delete(ctx, "a:b") },
		"keys":   func(ctx context.Context) error { _, err := k.Keys(ctx, "a:"); return err },
	}
	var wg sync.WaitGroup // concurrently: each waits for go-redis's dial retries
	for op, fn := range checks {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			start := time.Now()
			err := fn(ctx)
			if !errors.Is(err, pathstats.ErrUnavailable) {
				t.Errorf("%s with the server unreachable: %v, want ErrUnavailable", op, err)
			}
			t.Logf("%s failed after %s: %v", op, time.Since(start).Round(time.Millisecond), err)
		})
	}
	wg.Wait()
	p.restore()
	// go-redis redials at most once a second after failed dials.
	var rev uint64
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(50 * time.Millisecond) {
		if rev, err = k.Put(testCtx(t), "w", []byte("back")); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("put after the server is back: %v", err)
		}
	}
	select {
	case e := <-ch:
		if e.Revision != rev || string(e.Value) != "back" {
			t.Fatalf("watch sent %+v, want rev %d", e, rev)
		}
	case <-time.After(time.Minute):
		t.Fatal("watch saw nothing after the server came back")
	}
}

func TestGlobEscape(t *testing.T) {
	want := map[string]string{
		"plain:key": "plain:key",
		"a*b?c":     `a\*b\?c`,
		"[x]":       `\[x\]`,
		`back\`:     `back\\`,
		"^-":        "^-",
	}
	for in, out := range want {
		if got := globEscape(in); got != out {
			t.Errorf("globEscape(%q) = %q, want %q", in, got, out)
		}
	}
}

// proxy forwards TCP connections to a target until cut; cut closes the
// listener and every open connection, restore listens again on the same
// address.
type proxy struct {
	t      *testing.T
	target string
	mu     sync.Mutex
	ln     net.Listener
	conns  []net.Conn
	listen string
}

func startProxy(t *testing.T, target string) *proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{t: t, target: target, ln: ln, listen: ln.Addr().String()}
	go p.serve(ln)
	t.Cleanup(p.cut)
	return p
}

func (p *proxy) addr() string { return p.listen }

func (p *proxy) serve(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, up)
		p.mu.Unlock()
		go func() { _, _ = io.Copy(up, c); up.Close() }()
		go func() { _, _ = io.Copy(c, up); c.Close() }()
	}
}

func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

func (p *proxy) restore() {
	ln, err := net.Listen("tcp", p.listen)
	if err != nil {
		p.t.Fatalf("proxy listen again: %v", err)
	}
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	go p.serve(ln)
}

func itoa(n int) string { return strconv.Itoa(n) }

func indexOf(s, sub string) int { return strings.Index(s, sub) }

func firstLine(s string) string {
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		return s[:i]
	}
	return s
}
