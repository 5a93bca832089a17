package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pathstats/pathstats"
	"github.com/pathstats/pathstats/aggregator"
	"github.com/pathstats/pathstats/api"
	"github.com/pathstats/pathstats/compare"
	"github.com/pathstats/pathstats/demo"
	"github.com/pathstats/pathstats/gateway"
	"github.com/pathstats/pathstats/internal/datadir"
	"github.com/pathstats/pathstats/nats"
	"github.com/pathstats/pathstats/postgres"
	"github.com/pathstats/pathstats/readpath"
	"github.com/pathstats/pathstats/recorder"
	"github.com/pathstats/pathstats/redis"
	"github.com/pathstats/pathstats/snapshot"
	"github.com/pathstats/pathstats/sqlite"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// shutdownTimeout bounds each step of a graceful shutdown.
const shutdownTimeout = 10 * time.Second

func runServe(ctx context.Context, args []string, stderr io.Writer) error {
	var cfg serveConfig
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg.register(fs)
	if err := loadConfig(fs, args, os.Getenv); err != nil {
		return err
	}
	logger, err := newLogger(stderr, cfg.LogLevel, cfg.LogFormat)
	if err != nil {
		return err
	}
	slog.SetDefault(logger)
	s := &server{cfg: cfg, log: logger}
	defer s.close()
	if err := s.start(ctx); err != nil {
		return err
	}
	<-ctx.Done()
	logger.Info("shutting down")
	return s.shutdown()
}

// server is one running `pathstats serve`.
type server struct {
	cfg   serveConfig
	log   *slog.Logger
	reg   *prometheus.Registry
	nats  *nats.Server
	queue pathstats.Queue
	store sqlStore
	kv    pathstats.KV
	keys  pathstats.KV // Idempotency-Keys, beside the queue
	snap  *snapshot.Writer
	paths *readpath.Service
	conf  *readpath.ConfigCache
	rec   *recorder.Recorder
	agg   *aggregator.Aggregator

	lock   *datadir.Lock // held from start to close: one server per data dir
	nodeID string        // names this node in leases, batches and history

	gatewaySrv, adminSrv, demoSrv *http.Server
	gatewayAddr, adminAddr        string

	workers              context.Context
	cancelWorkers        context.CancelFunc
	snapDone             chan struct{}
	exts                 []extension
	canary               *canary
	oldPaths             api.PathsSource         // the legacy read path, set by its extension
	legacyFeed           pathstats.BatchObserver // the legacy dual write of accepted ingest batches
	legacyActive         func() bool             // legacy on and not decommissioned
	legacyDecommissioned func() bool
	legacyHourly         compare.HourlySource // the legacy side of comparisons
	comparer             *comparer
	archive              *archiving
	recDone              chan struct{}
	aggDone              chan struct{}
	demoCancel           context.CancelFunc
	wg                   sync.WaitGroup
}

func (s *server) start(ctx context.Context) error {
	if err := os.MkdirAll(s.cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	if err := s.claimDataDir(); err != nil {
		return err
	}
	if s.cfg.Durability != "default" && s.cfg.Durability != "strict" {
		return fmt.Errorf("--durability must be default or strict, not %q", s.cfg.Durability)
	}
	if s.cfg.LeaseTTL < time.Second {
		return fmt.Errorf("--lease-ttl must be at least 1s, not %s", s.cfg.LeaseTTL)
	}
	if s.cfg.Retention < minRetention {
		return fmt.Errorf("--retention must be at least %s (the 24-hour window and the open hour stay in SQL), not %s", minRetention, s.cfg.Retention)
	}
	if s.cfg.ArchiveEvery < time.Second {
		return fmt.Errorf("--archive-interval must be at least 1s, not %s", s.cfg.ArchiveEvery)
	}
	s.reg = prometheus.NewRegistry()
	s.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	routes, err := s.routes()
	if err != nil {
		return err
	}
	if err := s.openQueue(ctx); err != nil {
		return err
	}
	if err := s.openStore(ctx); err != nil {
		return err
	}
	if err := s.openKV(ctx); err != nil {
		return err
	}
	if err := s.startPipeline(ctx, routes); err != nil {
		return err
	}
	s.startReadPath(routes)
	if err := s.startArchive(ctx); err != nil {
		return err
	}
	for _, newExt := range extensions {
		ext := newExt()
		if err := ext.start(ctx, s); err != nil {
			return err
		}
		s.exts = append(s.exts, ext)
	}
	s.startCompare()
	if err := s.startCanary(); err != nil {
		return err
	}
	if err := s.startGateway(routes); err != nil {
		return err
	}
	if err := s.startAdmin(); err != nil {
		return err
	}
	if s.cfg.Demo {
		s.startDemoTraffic()
	}
	return s.writeAddrFile()
}

// routes parses --upstream and --route; --demo adds the demo upstream when
// no default upstream is given.
func (s *server) routes() ([]gateway.Route, error) {
	var routes []gateway.Route
	for _, r := range s.cfg.Routes {
		route, err := gateway.ParseRoute(r)
		if err != nil {
			return nil, fmt.Errorf("--route %q: %w", r, err)
		}
		routes = append(routes, route)
	}
	upstream := s.cfg.Upstream
	if upstream == "" && s.cfg.Demo {
		addr, err := s.startDemoUpstream()
		if err != nil {
			return nil, err
		}
		upstream = "http://" + addr
	}
	if upstream != "" {
		route, err := gateway.DefaultRoute(upstream)
		if err != nil {
			return nil, fmt.Errorf("--upstream: %w", err)
		}
		routes = append(routes, route)
	}
	return routes, nil
}

func (s *server) openQueue(ctx context.Context) error {
	strict := s.cfg.Durability == "strict"
	switch {
	case s.cfg.Queue == "embedded" || s.cfg.Queue == "":
		srv, err := nats.StartEmbedded(ctx, nats.EmbeddedOptions{
			StoreDir: filepath.Join(s.cfg.DataDir, "nats"), SyncAlways: strict, Logger: atLeast(s.log, slog.LevelWarn),
		})
		if err != nil {
			return err
		}
		s.nats = srv
		nc, err := srv.Connect()
		if err != nil {
			return fmt.Errorf("connect embedded nats: %w", err)
		}
		q, err := nats.Open(ctx, nc, nats.QueueConfig{AckWait: s.cfg.AckWait})
		if err != nil {
			nc.Close()
			return err
		}
		s.queue = q
		if s.keys, err = nats.OpenKV(ctx, nc, idempotencyBucket(1)); err != nil {
			return err
		}
	case strings.HasPrefix(s.cfg.Queue, "nats://") || strings.HasPrefix(s.cfg.Queue, "tls://"):
		servers, opts, err := natsURL(s.cfg.Queue, "stream", "subject", "replicas")
		if err != nil {
			return fmt.Errorf("--queue: %w", err)
		}
		cfg := nats.QueueConfig{AckWait: s.cfg.AckWait, Stream: opts.Get("stream"), Subject: opts.Get("subject"), Replicas: opts.replicas}
		if cfg.Stream != "" && cfg.Subject == "" {
			cfg.Subject = nats.DefaultSubject + "." + cfg.Stream
		}
		q, err := nats.OpenURL(ctx, servers, cfg)
		if err != nil {
			return err
		}
		s.queue = q
		if s.keys, err = nats.OpenKVURL(ctx, servers, idempotencyBucket(opts.replicas)); err != nil {
			return err
		}
	default:
		return fmt.Errorf("--queue: unsupported %q (embedded or nats://host:port)", s.cfg.Queue)
	}
	return nil
}

// idempotencyBucket is the KV bucket of Idempotency-Keys, on the queue's
// NATS: ingest depends on the queue alone.
func idempotencyBucket(replicas int) nats.KVConfig {
	return nats.KVConfig{Bucket: "pathstats_idempotency", Replicas: replicas, TTL: api.IdempotencyTTL, CompactInterval: -1}
}

// openKV opens the KV store: a bucket on the embedded server, or on an
// external NATS.
func (s *server) openKV(ctx context.Context) error {
	if s.cfg.KV == "" && s.nats == nil {
		s.cfg.KV = s.cfg.Queue
	}
	switch {
	case s.cfg.KV == "embedded" || s.cfg.KV == "":
		if s.nats == nil {
			return fmt.Errorf("--kv embedded needs the embedded queue; use --kv nats://host:port with --queue %s", s.cfg.Queue)
		}
		nc, err := s.nats.Connect()
		if err != nil {
			return fmt.Errorf("connect embedded nats for kv: %w", err)
		}
		kv, err := nats.OpenKV(ctx, nc, nats.KVConfig{})
		if err != nil {
			nc.Close()
			return err
		}
		s.kv = kv
	case strings.HasPrefix(s.cfg.KV, "nats://") || strings.HasPrefix(s.cfg.KV, "tls://"):
		servers, opts, err := natsURL(s.cfg.KV, "bucket", "replicas")
		if err != nil {
			return fmt.Errorf("--kv: %w", err)
		}
		kv, err := nats.OpenKVURL(ctx, servers, nats.KVConfig{Bucket: opts.Get("bucket"), Replicas: opts.replicas})
		if err != nil {
			return err
		}
		s.kv = kv
	case strings.HasPrefix(s.cfg.KV, "redis://") || strings.HasPrefix(s.cfg.KV, "rediss://"):
		url, prefix := splitPrefix(s.cfg.KV)
		kv, err := redis.Open(ctx, url, redis.Options{Prefix: prefix})
		if err != nil {
			return err
		}
		s.kv = kv
	default:
		return fmt.Errorf("--kv: unsupported %q (embedded, nats://host:port or redis://host:port/db)", s.cfg.KV)
	}
	return nil
}

// startReadPath starts the snapshot writer (one per cluster through its
// lease) and the read path that follows its versions.
func (s *server) startReadPath(routes []gateway.Route) {
	s.snap = snapshot.NewWriter(s.kv, s.store, snapshot.WriterOptions{LeaseTTL: s.cfg.LeaseTTL, Holder: s.node(), Registerer: s.reg, Logger: s.log.With("component", "snapshot")})
	s.conf = readpath.NewConfigCache(s.store, 5*time.Second)
	patterns := map[string]string{}
	for _, r := range routes {
		patterns[r.ProxyID] = r.Pattern
	}
	s.paths = readpath.New(readpath.Options{
		KV: s.kv, Loader: snapshot.NewReader(s.kv, snapshot.ReaderOptions{}), Refresh: s.snap.Trigger,
		SQL: s.store, Configs: s.conf, Patterns: patterns, MaxAge: s.cfg.SnapshotMaxAge,
		Logger: s.log.With("component", "readpath"),
	})
	s.paths.RegisterMetrics(s.reg)
	s.snapDone = make(chan struct{})
	go func() {
		defer close(s.snapDone)
		if err := s.snap.Run(s.workers, s.cfg.SnapshotEvery); err != nil && s.workers.Err() == nil {
			s.log.Error("snapshot writer stopped", "err", err)
		}
	}()
	s.wg.Add(1)
	go func() { defer s.wg.Done(); s.paths.Run(s.workers) }()
}

// splitPrefix takes a "prefix" query parameter (key prefix of a shared
// Redis) out of a KV URL.
func splitPrefix(raw string) (string, string) {
	u, err := url.Parse(raw)
	if err != nil {
		return raw, ""
	}
	q := u.Query()
	prefix := q.Get("prefix")
	q.Del("prefix")
	u.RawQuery = q.Encode()
	return u.String(), prefix
}

// natsOptions are the query parameters of a --queue or --kv nats:// URL.
type natsOptions struct {
	url.Values
	replicas int
}

// natsURL splits a NATS URL list ("nats://a:4222,nats://b:4222?replicas=3")
// into the server list and its options; only the allowed parameters are
// accepted, and replicas must be 1–5.
func natsURL(raw string, allowed ...string) (string, natsOptions, error) {
	servers, query, _ := strings.Cut(raw, "?")
	vals, err := url.ParseQuery(query)
	if err != nil {
		return "", natsOptions{}, fmt.Errorf("bad options %q: %w", query, err)
	}
	opts := natsOptions{Values: vals}
	for k := range vals {
		if !slices.Contains(allowed, k) {
			return "", opts, fmt.Errorf("unknown option %q (allowed: %s)", k, strings.Join(allowed, ", "))
		}
	}
	if r := vals.Get("replicas"); r != "" {
		n, err := strconv.Atoi(r)
		if err != nil || n < 1 || n > 5 {
			return "", opts, fmt.Errorf("replicas must be 1-5, not %q", r)
		}
		opts.replicas = n
	}
	return servers, opts, nil
}

// sqlStore is what serve needs of the SQL backend.
type sqlStore interface {
	pathstats.StatsStore
	pathstats.WindowReader
	pathstats.PathConfigStore
	pathstats.ConfigHistory
}

// hourlyWalker is the pipeline side of comparisons (not every backend has it).
type hourlyWalker interface {
	EachPathHourly(ctx context.Context, fromHour int64, fn func(path string, lastMs int64, hours [][3]int64) error) error
}

func (s *server) openStore(ctx context.Context) error {
	dsn := s.cfg.SQL
	if dsn == "" {
		dsn = "sqlite:" + filepath.Join(s.cfg.DataDir, "pathstats.db")
	}
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		st, err := postgres.Open(ctx, dsn, postgres.Options{})
		if err != nil {
			return err
		}
		s.store = st
		return nil
	}
	path, ok := strings.CutPrefix(dsn, "sqlite:")
	if !ok {
		return fmt.Errorf("--sql: unsupported %q (sqlite:PATH or postgres://…)", dsn)
	}
	st, err := sqlite.Open(ctx, path, sqlite.Options{Strict: s.cfg.Durability == "strict"})
	if err != nil {
		return err
	}
	s.store = st
	return nil
}

// startPipeline starts the recorder and the aggregator.
func (s *server) startPipeline(ctx context.Context, routes []gateway.Route) error {
	s.rec = recorder.New(recorder.Config{
		Node:             s.node(),
		FlushInterval:    s.cfg.FlushInterval,
		MaxPaths:         s.cfg.MaxPaths,
		MaxPathsPerProxy: s.cfg.MaxPathsProxy,
		Templates:        routeTemplates(routes),
		Normalizer:       recorder.Normalizer{Disabled: !s.cfg.Normalize},
		Logger:           s.log.With("component", "recorder"),
	}, s.queue)
	if err := s.rec.RegisterMetrics(s.reg); err != nil {
		return err
	}
	if err := s.seedGuard(ctx); err != nil {
		return err
	}
	workers, cancel := context.WithCancel(context.Background())
	s.workers, s.cancelWorkers = workers, cancel
	s.recDone = make(chan struct{})
	go func() { defer close(s.recDone); s.rec.Run(workers) }()
	s.agg = aggregator.New(aggregator.Config{Logger: s.log.With("component", "aggregator")}, s.queue, s.store, s.reg)
	s.aggDone = make(chan struct{})
	go func() { defer close(s.aggDone); s.agg.Run(workers) }()
	return nil
}

// node names this node in leases, batch ids and history: the data dir's
// node id, the same after a restart, so a restarted process re-takes the
// leases of its predecessor at once (the data dir lock guarantees that
// predecessor is dead).
func (s *server) node() string {
	return s.nodeID
}

// routeTemplates maps each proxyId to its route pattern, the template its
// paths are normalised with; a proxyId with several patterns gets none (the
// recorder does not know which one matched).
func routeTemplates(routes []gateway.Route) map[string]string {
	out := map[string]string{}
	count := map[string]int{}
	for _, r := range routes {
		count[r.ProxyID]++
		out[r.ProxyID] = r.Template()
	}
	for id, n := range count {
		if n > 1 {
			delete(out, id)
		}
	}
	return out
}

// seedGuard admits the paths of the last day, so a restart does not reopen
// the cardinality budget.
func (s *server) seedGuard(ctx context.Context) error {
	keys, err := s.store.DistinctPaths(ctx, pathstats.HourBucket(time.Now().Add(-24*time.Hour)))
	if err != nil {
		return fmt.Errorf("seed cardinality guard: %w", err)
	}
	for _, k := range keys {
		s.rec.Admit(k.ProxyID, k.Path)
	}
	return nil
}

func (s *server) startGateway(routes []gateway.Route) error {
	if len(routes) == 0 {
		s.log.Info("gateway off: no --upstream, --route or --demo")
		return nil
	}
	proxy, err := gateway.NewProxy(routes, s.rec, gateway.Options{Logger: s.log.With("component", "gateway")})
	if err != nil {
		return err
	}
	s.gatewaySrv = gateway.NewServer(s.cfg.Listen, proxy)
	s.gatewayAddr, err = s.serve(s.gatewaySrv, "gateway")
	for _, r := range routes {
		s.log.Info("route", "proxyId", r.ProxyID, "pattern", r.Pattern, "upstream", r.Upstream.String())
	}
	return err
}

func (s *server) startAdmin() error {
	token, created, err := api.LoadOrCreateToken(s.cfg.DataDir, s.cfg.AdminToken)
	if err != nil {
		return err
	}
	if created {
		s.log.Info("admin token generated", "file", filepath.Join(s.cfg.DataDir, "admin-token"))
	}
	ingest := &api.Ingest{
		Builder: s.rec, Queue: s.queue, Keys: s.keys, Observer: s.legacyFeed, Retention: s.cfg.Retention,
		Logger: s.log.With("component", "ingest"), Metrics: api.NewIngestMetrics(s.reg),
	}
	mux := api.NewAdminMux(api.AdminConfig{
		Token: token, Ingest: ingest, Gatherer: s.reg,
		Checks: map[string]func(context.Context) error{"queue": s.queue.Ping, "sql": s.store.Ping, "kv": s.kv.Ping},
		Extra:  s.adminRoutes(),
	})
	s.adminSrv = &http.Server{
		Addr: s.cfg.AdminListen, Handler: mux,
		ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 60 * time.Second,
		WriteTimeout: 60 * time.Second, IdleTimeout: 120 * time.Second, MaxHeaderBytes: 1 << 20,
	}
	s.adminAddr, err = s.serve(s.adminSrv, "admin")
	return err
}

// extension is an optional part of serve that lives in its own file (the
// legacy system): deleting that file removes it and nothing else.
type extension interface {
	// start runs after the pipeline and read path exist and before any
	// traffic is served.
	start(ctx context.Context, s *server) error
	// routes are extra authenticated admin routes.
	routes() map[string]http.Handler
	// stop runs after the recorder flushed at shutdown.
	stop(ctx context.Context)
}

// extensions are registered by init functions of optional files.
var extensions []func() extension

// adminRoutes are the authenticated admin endpoints beyond ingest.
func (s *server) adminRoutes() map[string]http.Handler {
	routes := api.PathConfigHandlers(s.conf)
	v2 := api.PathsHandler(s.paths)
	routes["GET /api/admin/paths-v2"] = v2
	for k, h := range s.canary.routes() {
		routes[k] = h
	}
	for k, h := range s.compareRoutes() {
		routes[k] = h
	}
	for k, h := range s.archiveRoutes() {
		routes[k] = h
	}
	for _, ext := range s.exts {
		for k, h := range ext.routes() {
			routes[k] = h
		}
	}
	return routes
}

// serve listens on srv.Addr and serves in the background; it returns the
// bound address (useful with port 0).
func (s *server) serve(srv *http.Server, name string) (string, error) {
	ln, err := net.Listen("tcp", srv.Addr)
	if err != nil {
		return "", fmt.Errorf("%s listen: %w", name, err)
	}
	addr := ln.Addr().String()
	s.log.Info(name+" listening", "addr", addr)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error(name+" server failed", "err", err)
		}
	}()
	return addr, nil
}

func (s *server) startDemoUpstream() (string, error) {
	s.demoSrv = &http.Server{Addr: "127.0.0.1:0", Handler: demo.Upstream(), ReadHeaderTimeout: 10 * time.Second}
	return s.serve(s.demoSrv, "demo upstream")
}

func (s *server) startDemoTraffic() {
	ctx, cancel := context.WithCancel(context.Background())
	s.demoCancel = cancel
	t := &demo.Traffic{Target: "http://" + s.gatewayAddr, Rate: s.cfg.DemoRate, Logger: s.log.With("component", "demo")}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := t.Run(ctx); err != nil {
			s.log.Error("demo traffic stopped", "err", err)
		}
	}()
	s.log.Info("demo traffic running", "rate", s.cfg.DemoRate, "target", t.Target)
}

// addrFile tells tools and tests where a running server listens.
type addrFile struct {
	PID     int    `json:"pid"`
	Admin   string `json:"admin"`
	Gateway string `json:"gateway,omitempty"`
}

func (s *server) writeAddrFile() error {
	data, _ := json.Marshal(addrFile{PID: os.Getpid(), Admin: s.adminAddr, Gateway: s.gatewayAddr})
	path := filepath.Join(s.cfg.DataDir, addrFileName)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return os.Rename(tmp, path)
}

// shutdown stops accepting traffic, flushes the recorder into the queue,
// lets the aggregator drain and closes the backends.
func (s *server) shutdown() error {
	if s.demoCancel != nil {
		s.demoCancel()
	}
	s.stopHTTP(s.gatewaySrv, "gateway")
	s.stopHTTP(s.adminSrv, "admin")
	s.stopHTTP(s.demoSrv, "demo upstream")
	var err error
	if s.rec != nil {
		s.cancelWorkers()
		<-s.recDone
		ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		err = s.rec.Close(ctx)
		cancel()
		st := s.rec.Stats()
		s.log.Debug("recorder flushed", "recorded", st.Recorded.Load(), "publishedEvents", st.PublishedEvents.Load())
		if err != nil {
			s.log.Error("recorder flush at shutdown incomplete", "err", err)
		}
		<-s.aggDone
		s.drain()
	}
	for _, ext := range s.exts {
		ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		ext.stop(ctx)
		cancel()
	}
	if s.snap != nil {
		<-s.snapDone
		ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		_ = s.snap.Close(ctx)
		cancel()
	}
	s.wg.Wait()
	return err
}

// drain applies what the queue still holds, for a bounded time, so a
// graceful stop leaves SQL up to date.
func (s *server) drain() {
	ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := s.agg.Drain(ctx, 250*time.Millisecond); err != nil {
		s.log.Warn("drain at shutdown stopped", "err", err)
	}
}

func (s *server) stopHTTP(srv *http.Server, name string) {
	if srv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		s.log.Warn(name+" shutdown", "err", err)
		_ = srv.Close()
	}
}

// close releases backends; safe after a failed start.
func (s *server) close() {
	if s.cancelWorkers != nil {
		s.cancelWorkers()
	}
	s.archive.close()
	if s.store != nil {
		_ = s.store.Close()
	}
	if s.queue != nil {
		_ = s.queue.Close()
	}
	if s.kv != nil {
		_ = s.kv.Close()
	}
	if s.keys != nil {
		_ = s.keys.Close()
	}
	if s.nats != nil {
		s.nats.Shutdown()
	}
	s.releaseDataDir()
}

// atLeast returns a logger that drops records below min (the embedded NATS
// server is chatty at info level).
func atLeast(l *slog.Logger, min slog.Level) *slog.Logger {
	return slog.New(minLevel{Handler: l.Handler(), min: min})
}

type minLevel struct {
	slog.Handler
	min slog.Level
}

func (h minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.Handler.Enabled(ctx, l)
}

func (h minLevel) WithAttrs(a []slog.Attr) slog.Handler {
	return minLevel{Handler: h.Handler.WithAttrs(a), min: h.min}
}

func (h minLevel) WithGroup(name string) slog.Handler {
	return minLevel{Handler: h.Handler.WithGroup(name), min: h.min}
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format must be text or json, not %q", format)
}

var jsonUnmarshal = json.Unmarshal
