package main

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/pathstats/pathstats"
	"github.com/pathstats/pathstats/api"
	"github.com/pathstats/pathstats/migration"
	"github.com/pathstats/pathstats/rollout"
)

// canary is the migration machinery: the config store, the router of
// GET /api/admin/paths, the auto-rollback monitor and the rollout driver.
type canary struct {
	store   *migration.Store
	router  *migration.Router
	monitor *migration.Monitor
	rollout *rollout.Driver
}

// startCanary wires the canary after the read path and the extensions (the
// legacy system sets s.oldPaths and s.legacyActive).
func (s *server) startCanary() error {
	var trusted []string
	for _, t := range strings.Split(s.cfg.TrustedProxies, ",") {
		if t = strings.TrimSpace(t); t != "" {
			trusted = append(trusted, t)
		}
	}
	ips, err := migration.NewClientIP(trusted, s.cfg.ClientIPHeader)
	if err != nil {
		return err
	}
	c := &canary{}
	c.store = migration.NewStore(s.kv, s.store, migration.StoreOptions{Logger: s.log.With("component", "migration")})
	c.monitor = migration.NewMonitor(migration.MonitorOptions{Updater: c.store, Actor: "auto-rollback@" + s.node(), Logger: s.log.With("component", "auto-rollback")})
	var old api.PathsSource = noPaths{}
	if s.oldPaths != nil {
		old = s.oldPaths
	}
	legacyOff := func() bool { return s.oldPaths == nil || s.legacyActive == nil || !s.legacyActive() }
	c.router = migration.NewRouter(migration.RouterOptions{
		Config: c.store.Current, New: s.paths, Old: old, LegacyOff: legacyOff, ClientIP: ips, Monitor: c.monitor,
	})
	c.rollout = rollout.New(rollout.Options{
		KV: s.kv, Updater: c.store, Stats: c.monitor.Stats, Holder: s.node(), Logger: s.log.With("component", "rollout"),
	})
	s.canary = c
	s.wg.Add(3)
	go func() { defer s.wg.Done(); _ = c.store.Run(s.workers) }()
	go func() { defer s.wg.Done(); c.monitor.Run(s.workers, time.Second) }()
	go func() { defer s.wg.Done(); c.rollout.Run(s.workers) }()
	return nil
}

// legacyInUse says whether the migration config still sends any client to
// the legacy system (cleanup refuses then, unless forced).
func (s *server) legacyInUse() bool {
	if s.canary == nil {
		return true
	}
	cfg := s.canary.store.Current()
	return cfg.NewAPIPercentage < 100 || len(cfg.ForceOldAPIIPs) > 0
}

// canaryRoutes are the canary's admin endpoints.
func (c *canary) routes() map[string]http.Handler {
	routes := map[string]http.Handler{"GET /api/admin/paths": c.router}
	for k, h := range migration.Handlers(c.store) {
		routes[k] = h
	}
	for k, h := range rollout.Handlers(c.rollout) {
		routes[k] = h
	}
	return routes
}

// noPaths answers when no old source exists (legacy removed): never used
// because the router then sends everything to the new path.
type noPaths struct{}

func (noPaths) Paths(context.Context, pathstats.PathQuery) (api.PathsResult, error) {
	return api.PathsResult{}, pathstats.Errorf(pathstats.EGone, "the legacy system is gone")
}
