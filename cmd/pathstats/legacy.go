package main

// The legacy system's wiring. Retiring it (the plan's Task 7) is deleting
// this file, legacy_test.go and the legacy package.

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"

	"github.com/pathstats/pathstats/compare"
	"github.com/pathstats/pathstats/legacy"
)

func init() {
	extensions = append(extensions, func() extension { return &legacyExt{} })
}

// legacyExt runs the legacy live-counter system beside the pipeline.
type legacyExt struct {
	sys *legacy.System
	log *slog.Logger
	srv *server
}

func (l *legacyExt) start(ctx context.Context, s *server) error {
	if s.cfg.Legacy != "on" && s.cfg.Legacy != "off" {
		return fmt.Errorf("--legacy must be on or off, not %q", s.cfg.Legacy)
	}
	sys, err := legacy.Open(ctx, legacy.Config{
		Dir: filepath.Join(s.cfg.DataDir, "legacy"), Registerer: s.reg, Logger: s.log.With("component", "legacy"),
	})
	if err != nil {
		return err
	}
	l.sys, l.log, l.srv = sys, s.log, s
	s.oldPaths = sys.PathsSource()
	s.legacyActive = func() bool { return s.cfg.Legacy == "on" && !sys.Decommissioned() }
	s.legacyDecommissioned = sys.Decommissioned
	s.legacyHourly = compare.TripleFunc(sys.EachPathHourly)
	switch {
	case sys.Decommissioned():
		if s.cfg.Legacy == "on" {
			s.log.Warn("legacy system is decommissioned; --legacy on is ignored (no dual write, /paths/do/* answer 410)")
		}
	case s.cfg.Legacy == "on":
		s.rec.AddObserver(sys) // dual write of what the queue accepted
		s.legacyFeed = sys
	default:
		s.log.Info("legacy system off: no dual write; its data stays available for export and cleanup")
	}
	return nil
}

func (l *legacyExt) routes() map[string]http.Handler {
	return l.sys.Handlers(l.inUse)
}

// inUse says whether the migration config still routes any client to the
// legacy system.
func (l *legacyExt) inUse(ctx context.Context) (bool, error) {
	return !l.sys.Decommissioned() && l.srv.legacyInUse(), nil
}

func (l *legacyExt) stop(ctx context.Context) {
	if err := l.sys.Close(ctx); err != nil {
		l.log.Error("legacy system close", "err", err)
	}
}
