package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// listFlag is a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(v string) error {
	*l = append(*l, v)
	return nil
}

// serveConfig is everything `pathstats serve` is configured with.
type serveConfig struct {
	DataDir        string
	NodeID         string
	Listen         string
	AdminListen    string
	AdminToken     string
	Upstream       string
	Routes         listFlag
	TrustedProxies string
	ClientIPHeader string
	Queue          string
	KV             string
	SnapshotEvery  time.Duration
	SnapshotMaxAge time.Duration
	SQL            string
	FlushInterval  time.Duration
	AckWait        time.Duration
	Retention      time.Duration
	LeaseTTL       time.Duration
	Archive        string
	ArchiveEvery   time.Duration
	Durability     string
	Demo           bool
	Legacy         string
	DemoRate       float64
	MaxPaths       int
	MaxPathsProxy  int
	Normalize      bool
	LogLevel       string
	LogFormat      string
	ConfigFile     string
}

func (c *serveConfig) register(fs *flag.FlagSet) {
	fs.StringVar(&c.DataDir, "data-dir", "./pathstats-data", "directory for everything the embedded backends keep")
	fs.StringVar(&c.NodeID, "node-id", "", "names this node in leases, batch ids and history (default: generated once into <data-dir>/node-id)")
	fs.StringVar(&c.Listen, "listen", "127.0.0.1:8080", "gateway listen address (off without --upstream/--route/--demo)")
	fs.StringVar(&c.AdminListen, "admin-listen", "127.0.0.1:9090", "admin API, ingest API, /metrics, /healthz, /readyz")
	fs.StringVar(&c.AdminToken, "admin-token", "", "bearer token for /api/... (default: generated into <data-dir>/admin-token)")
	fs.StringVar(&c.Upstream, "upstream", "", "default upstream URL (proxyId \"default\")")
	fs.Var(&c.Routes, "route", "route ID=PATTERN=URL (repeatable)")
	fs.StringVar(&c.TrustedProxies, "trusted-proxies", "", "comma-separated IPs/CIDRs whose client-IP header is believed")
	fs.StringVar(&c.ClientIPHeader, "client-ip-header", "", "header carrying the client IP from a trusted proxy")
	fs.StringVar(&c.Queue, "queue", "embedded", "queue: embedded or nats://host:port")
	fs.StringVar(&c.KV, "kv", "", "KV store for snapshots and config: embedded, nats://host:port or redis://host:port/db (default: the queue's NATS)")
	fs.DurationVar(&c.SnapshotEvery, "snapshot-interval", 10*time.Second, "how often the snapshot of the last 24 hours is rebuilt")
	fs.DurationVar(&c.SnapshotMaxAge, "snapshot-max-age", 60*time.Second, "older snapshots are served stale while one refresh runs")
	fs.StringVar(&c.SQL, "sql", "", "SQL store: sqlite:PATH or postgres://… (default sqlite:<data-dir>/pathstats.db)")
	fs.DurationVar(&c.FlushInterval, "flush-interval", time.Second, "how often recorded counters are published")
	fs.DurationVar(&c.AckWait, "ack-wait", 30*time.Second, "redelivery delay of a batch fetched by a node that died before acknowledging it")
	fs.DurationVar(&c.Retention, "retention", 720*time.Hour, "hourly rows kept in SQL; ingest refuses older events")
	fs.StringVar(&c.Archive, "archive", "", "archive of hours older than --retention: file:///dir, s3://bucket?region=…[&endpoint=…&use_path_style=true], or off (default file://<data-dir>/archive)")
	fs.DurationVar(&c.ArchiveEvery, "archive-interval", 10*time.Minute, "how often the elected archiver looks for hours to archive")
	fs.DurationVar(&c.LeaseTTL, "lease-ttl", 30*time.Second, "lease of the singleton jobs (snapshot writer, archiver): a dead leader is replaced within it")
	fs.StringVar(&c.Durability, "durability", "default", "default (survives process crash) or strict (fsync before every ack)")
	fs.StringVar(&c.Legacy, "legacy", "on", "the legacy collector: on (dual write) or off (data kept for export/cleanup); forced off once decommissioned")
	fs.BoolVar(&c.Demo, "demo", false, "built-in demo upstream and synthetic traffic")
	fs.Float64Var(&c.DemoRate, "demo-rate", 20, "requests/s of the demo traffic")
	fs.IntVar(&c.MaxPaths, "max-paths", 1_000_000, "cardinality guard: distinct paths in total")
	fs.IntVar(&c.MaxPathsProxy, "max-paths-per-proxy", 100_000, "cardinality guard: distinct paths per proxy")
	fs.BoolVar(&c.Normalize, "normalize", true, "normalise paths (ids → :id, dot segments, query dropped)")
	fs.StringVar(&c.LogLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&c.LogFormat, "log-format", "text", "text or json")
	fs.StringVar(&c.ConfigFile, "config", "", "YAML config file (keys are flag names)")
}

// loadConfig parses args with precedence flag > env (PATHSTATS_<FLAG>) >
// config file > default.
func loadConfig(fs *flag.FlagSet, args []string, getenv func(string) string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	fromEnv := map[string]bool{}
	var firstErr error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || firstErr != nil {
			return
		}
		if v, ok := lookupEnv(getenv, f.Name); ok {
			if err := setAll(f, splitList(f, v)); err != nil {
				firstErr = fmt.Errorf("env %s: %w", envName(f.Name), err)
			}
			fromEnv[f.Name] = true
		}
	})
	if firstErr != nil {
		return firstErr
	}
	path := fs.Lookup("config").Value.String()
	if path == "" {
		return nil
	}
	file, err := readConfigFile(path)
	if err != nil {
		return err
	}
	for key, vals := range file {
		f := fs.Lookup(key)
		if f == nil || key == "config" {
			return fmt.Errorf("config file %s: unknown key %q", path, key)
		}
		if set[key] || fromEnv[key] {
			continue
		}
		if err := setAll(f, vals); err != nil {
			return fmt.Errorf("config file %s: %s: %w", path, key, err)
		}
	}
	return nil
}

func envName(flagName string) string {
	return "PATHSTATS_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

func lookupEnv(getenv func(string) string, name string) (string, bool) {
	v := getenv(envName(name))
	return v, v != ""
}

// splitList splits an env value of a repeatable flag on commas.
func splitList(f *flag.Flag, v string) []string {
	if _, ok := f.Value.(*listFlag); ok {
		var out []string
		for _, s := range strings.Split(v, ",") {
			if s = strings.TrimSpace(s); s != "" {
				out = append(out, s)
			}
		}
		return out
	}
	return []string{v}
}

func setAll(f *flag.Flag, vals []string) error {
	for _, v := range vals {
		if err := f.Value.Set(v); err != nil {
			return err
		}
	}
	return nil
}

// readConfigFile reads a YAML mapping of flag names to scalars or lists.
func readConfigFile(path string) (map[string][]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config file: %w", err)
	}
	var raw map[string]any
	if err := yaml.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("parse config file %s: %w", path, err)
	}
	out := make(map[string][]string, len(raw))
	for k, v := range raw {
		switch v := v.(type) {
		case []any:
			for _, e := range v {
				s, err := scalar(e)
				if err != nil {
					return nil, fmt.Errorf("config file %s: %s: %w", path, k, err)
				}
				out[k] = append(out[k], s)
			}
		default:
			s, err := scalar(v)
			if err != nil {
				return nil, fmt.Errorf("config file %s: %s: %w", path, k, err)
			}
			out[k] = []string{s}
		}
	}
	return out, nil
}

func scalar(v any) (string, error) {
	switch v := v.(type) {
	case string:
		return v, nil
	case bool, int, int64, float64:
		return fmt.Sprint(v), nil
	case nil:
		return "", errors.New("empty value")
	default:
		return "", fmt.Errorf("unsupported value %v", v)
	}
}
