package legacy

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/pathstats/pathstats"
	"github.com/pathstats/pathstats/api"
)

// Gate says whether the migration config still routes any client to the
// legacy system; batch-cleanup and decommission refuse while it does (unless
// force=true). A nil Gate never refuses.
type Gate func(ctx context.Context) (legacyInUse bool, err error)

// cleanupBudget bounds one batch-cleanup request: no batch starts after it,
// and the answer's remaining tells the client to call again.
const cleanupBudget = 10 * time.Second

// CleanupResult is the data of a batch-cleanup answer.
type CleanupResult struct {
	Deleted   int `json:"deleted"`
	Remaining int `json:"remaining"`
}

// DecommissionResult is the data of a decommission answer.
type DecommissionResult struct {
	State     string `json:"state"`
	Deleted   int    `json:"deleted"`   // instances the decommission deleted
	Instances int    `json:"instances"` // left in storage (force)
}

// Handlers returns the legacy admin endpoints keyed by their mux pattern:
//
//	GET  /api/admin/paths/do/stats          Stats
//	GET  /api/admin/paths/do/export         ?format=json|ndjson, streamed
//	POST /api/admin/paths/do/batch-cleanup  ?force=true&batchSize=N: deletes
//	     all instances in batches for up to 10 s, then answers {deleted,
//	     remaining}; repeat while remaining > 0. 409 CONFLICT while gate says
//	     legacy is in use, unless force.
//	POST /api/admin/paths/do/decommission   ?force=true: stops the dual write,
//	     deletes every instance (force keeps them) and turns the system off;
//	     409 CONFLICT while gate says legacy is in use, unless force.
//
// After decommission every one of them answers 410 GONE.
func (s *System) Handlers(gate Gate) map[string]http.Handler {
	return map[string]http.Handler{
		"GET /api/admin/paths/do/stats":          s.live(s.handleStats),
		"GET /api/admin/paths/do/export":         s.live(s.handleExport),
		"POST /api/admin/paths/do/batch-cleanup": s.live(s.cleanupHandler(gate)),
		"POST /api/admin/paths/do/decommission":  s.live(s.decommissionHandler(gate)),
	}
}

// live answers 410 GONE once the system is decommissioned.
func (s *System) live(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.decom.Load() {
			api.WriteError(w, errGone)
			return
		}
		h(w, r)
	})
}

func (s *System) handleStats(w http.ResponseWriter, r *http.Request) {
	st, err := s.Stats(r.Context())
	if err != nil {
		api.WriteError(w, err)
		return
	}
	api.WriteData(w, http.StatusOK, st)
}

func (s *System) handleExport(w http.ResponseWriter, r *http.Request) {
	format, err := checkFormat(r.URL.Query().Get("format"))
	if err == nil {
		err = s.usable()
	}
	if err == nil {
		err = s.settle(r.Context())
	}
	if err != nil {
		api.WriteError(w, err)
		return
	}
	h := w.Header()
	if format == FormatNDJSON {
		h.Set("Content-Type", "application/x-ndjson")
	} else {
		h.Set("Content-Type", "application/json; charset=utf-8")
	}
	h.Set("Content-Disposition", `attachment; filename="legacy-export.`+format+`"`)
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	if err := s.stream(r.Context(), w, format, nil); err != nil {
		// The status is sent: a truncated body (no closing bracket) is the
		// only signal left to the client.
		s.log.Error("legacy export aborted", "err", err)
	}
}

func (s *System) cleanupHandler(gate Gate) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		v := r.URL.Query()
		force, err := boolParam(v, "force")
		if err != nil {
			api.WriteError(w, err)
			return
		}
		size, err := batchSizeParam(v)
		if err != nil {
			api.WriteError(w, err)
			return
		}
		if err := s.checkGate(r.Context(), gate, force, "cleanup"); err != nil {
			api.WriteError(w, err)
			return
		}
		deleted, remaining, err := s.cleanup(r.Context(), size, time.Now().Add(cleanupBudget), nil)
		if err != nil {
			api.WriteError(w, err)
			return
		}
		api.WriteData(w, http.StatusOK, CleanupResult{Deleted: deleted, Remaining: remaining})
	}
}

func (s *System) decommissionHandler(gate Gate) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		force, err := boolParam(r.URL.Query(), "force")
		if err != nil {
			api.WriteError(w, err)
			return
		}
		if err := s.checkGate(r.Context(), gate, force, "decommission"); err != nil {
			api.WriteError(w, err)
			return
		}
		deleted, err := s.Decommission(r.Context(), force)
		if err != nil {
			api.WriteError(w, err)
			return
		}
		api.WriteData(w, http.StatusOK, DecommissionResult{State: StateDecommissioned, Deleted: deleted, Instances: s.Instances()})
	}
}

// checkGate refuses op (cleanup, decommission) while the migration config
// routes any client to the legacy system, unless force. Its messages name
// the CLI's commands and flags, and the API's parameter.
func (s *System) checkGate(ctx context.Context, gate Gate, force bool, op string) error {
	if force || gate == nil {
		return nil
	}
	inUse, err := gate(ctx)
	if err != nil {
		s.log.Error("legacy "+op+" gate: read the migration config", "err", err)
		return pathstats.Errorf(pathstats.EUnavailable,
			"cannot read the migration config; retry, or run `pathstats legacy %s --force` (API: force=true)", op)
	}
	if inUse {
		return pathstats.Errorf(pathstats.EConflict,
			"the migration config still routes clients to the legacy system: move every client to the new read path first "+
				"(`pathstats migrate set --percent 100`, and `pathstats migrate force-old remove` each forced IP), "+
				"or run `pathstats legacy %s --force` (API: force=true)", op)
	}
	return nil
}

// boolParam parses an optional boolean query parameter.
func boolParam(v url.Values, name string) (bool, error) {
	vals, ok := v[name]
	if !ok {
		return false, nil
	}
	b, err := strconv.ParseBool(vals[0])
	if err != nil {
		return false, pathstats.Errorf(pathstats.EInvalidParameter, "%s must be true or false", name)
	}
	return b, nil
}

// batchSizeParam parses batchSize: 1..10000, default 1000.
func batchSizeParam(v url.Values) (int, error) {
	vals, ok := v["batchSize"]
	if !ok {
		return DefaultBatchSize, nil
	}
	s := vals[0]
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > MaxBatchSize || len(s) > 6 || s[0] == '+' {
		return 0, pathstats.Errorf(pathstats.EInvalidParameter, "batchSize must be an integer from 1 to %d", MaxBatchSize)
	}
	return n, nil
}
