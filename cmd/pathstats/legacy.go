package main

// The legacy system's wiring. Retiring it (the plan's Task 7) is deleting
// this file, legacy_test.go and the legacy package.

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"

	"github.com/pathstats/pathstats/legacy"
)

func init() {
	extensions = append(extensions, func() extension { return &legacyExt{} })
}

// legacyExt runs the legacy live-counter system beside the pipeline.
type legacyExt struct {
	sys *legacy.System
	log *slog.Logger
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
	l.sys, l.log = sys, s.log
	switch {
	case sys.Decommissioned():
		if s.cfg.Legacy == "on" {
			s.log.Warn("legacy system is decommissioned; --legacy on is ignored (no dual write, /paths/do/* answer 410)")
		}
	case s.cfg.Legacy == "on":
		s.rec.AddTee(sys) // dual write
	default:
		s.log.Info("legacy system off: no dual write; its data stays available for export and cleanup")
	}
	return nil
}

func (l *legacyExt) routes() map[string]http.Handler {
	return l.sys.Handlers(l.inUse)
}

// inUse says whether any client may still be routed to the legacy system.
// Until the migration config exists every client is (the plan's default is
// 0% on the new API), so cleanup needs force.
func (l *legacyExt) inUse(ctx context.Context) (bool, error) {
	return !l.sys.Decommissioned(), nil
}

func (l *legacyExt) stop(ctx context.Context) {
	if err := l.sys.Close(ctx); err != nil {
		l.log.Error("legacy system close", "err", err)
	}
}
