package main

import (
	"context"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func parseTest(t *testing.T, args []string, env map[string]string, file string) (serveConfig, error) {
	t.Helper()
	var cfg serveConfig
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	cfg.register(fs)
	if file != "" {
		p := filepath.Join(t.TempDir(), "pathstats.yaml")
		if err := os.WriteFile(p, []byte(file), 0o600); err != nil {
			t.Fatal(err)
		}
		args = append([]string{"--config", p}, args...)
	}
	err := loadConfig(fs, args, func(k string) string { return env[k] })
	return cfg, err
}

func TestConfigPrecedence(t *testing.T) {
	file := "data-dir: /from/file\nlisten: file:1\nadmin-listen: file:2\nflush-interval: 3s\nroute:\n  - a=/a/*=http://a\n  - b=/b/*=http://b\ndemo: true\n"
	env := map[string]string{"PATHSTATS_LISTEN": "env:1", "PATHSTATS_ADMIN_LISTEN": "env:2"}
	cfg, err := parseTest(t, []string{"--admin-listen", "flag:2"}, env, file)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.AdminListen != "flag:2" || cfg.Listen != "env:1" || cfg.DataDir != "/from/file" || cfg.FlushInterval != 3*time.Second || !cfg.Demo {
		t.Fatalf("precedence wrong: %+v", cfg)
	}
	if len(cfg.Routes) != 2 || cfg.Routes[1] != "b=/b/*=http://b" {
		t.Fatalf("routes %v", cfg.Routes)
	}
	if cfg.Retention != 720*time.Hour || cfg.Queue != "embedded" {
		t.Fatalf("defaults lost: %+v", cfg)
	}
}

func TestConfigEnvList(t *testing.T) {
	cfg, err := parseTest(t, nil, map[string]string{"PATHSTATS_ROUTE": "a=/a/*=http://a, b=/b/*=http://b"}, "")
	if err != nil || len(cfg.Routes) != 2 {
		t.Fatalf("%v %v", cfg.Routes, err)
	}
}

func TestConfigErrors(t *testing.T) {
	if _, err := parseTest(t, nil, nil, "no-such-flag: 1\n"); err == nil {
		t.Fatal("unknown key accepted")
	}
	if _, err := parseTest(t, nil, nil, "flush-interval: soon\n"); err == nil {
		t.Fatal("bad duration accepted")
	}
	if _, err := parseTest(t, nil, map[string]string{"PATHSTATS_DEMO": "maybe"}, ""); err == nil {
		t.Fatal("bad env bool accepted")
	}
	if _, err := parseTest(t, nil, nil, "[not a map"); err == nil {
		t.Fatal("bad yaml accepted")
	}
}

func TestNATSURLOptions(t *testing.T) {
	servers, opts, err := natsURL("nats://a:1,nats://b:2?stream=S1&replicas=3", "stream", "subject", "replicas")
	if err != nil || servers != "nats://a:1,nats://b:2" || opts.Get("stream") != "S1" || opts.replicas != 3 {
		t.Fatalf("got %q %+v %v", servers, opts, err)
	}
	if s, o, err := natsURL("nats://a:1", "bucket"); err != nil || s != "nats://a:1" || o.replicas != 0 {
		t.Fatalf("plain: %q %+v %v", s, o, err)
	}
	for _, bad := range []string{"nats://a?replicas=0", "nats://a?replicas=7", "nats://a?replicas=x", "nats://a?bucket=b", "nats://a?%zz"} {
		if _, _, err := natsURL(bad, "stream", "replicas"); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
}

// TestServeRejectsBadSettings: settings out of range stop serve at start
// with a message naming the flag, before anything is opened.
func TestServeRejectsBadSettings(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--retention", "24h"}, "--retention must be at least 25h"},
		{[]string{"--lease-ttl", "500ms"}, "--lease-ttl must be at least 1s"},
		{[]string{"--archive-interval", "0s"}, "--archive-interval must be at least 1s"},
		{[]string{"--queue", "nats://127.0.0.1:1?replicas=9"}, "--queue: replicas must be 1-5"},
		{[]string{"--queue", "nats://127.0.0.1:1?bucket=x"}, `--queue: unknown option "bucket"`},
		{[]string{"--archive", "ftp://x"}, "--archive"},
	} {
		args := append([]string{"--data-dir", t.TempDir(), "--admin-listen", "127.0.0.1:0"}, c.args...)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		err := runServe(ctx, args, io.Discard)
		cancel()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want %q", c.args, err, c.want)
		}
	}
}
