package rollout

import (
	"errors"
	"io"
	"net/http"

	"github.com/pathstats/pathstats"
	"github.com/pathstats/pathstats/api"
)

// Route patterns of the rollout endpoints.
const (
	RouteStart = "POST /api/admin/paths/migration-config/rollout"
	RouteState = "GET /api/admin/paths/migration-config/rollout"
	RouteAbort = "POST /api/admin/paths/migration-config/rollout/abort"
)

// maxBody bounds request bodies.
const maxBody = 64 << 10

const maxReasonLen = 500

// Handlers returns the rollout endpoints keyed by their mux pattern:
// POST starts a rollout (201 with its state; 409 while one is active),
// GET returns the state (404 when none), POST …/abort stops it with an
// optional body {"reason": "…"} (200; the percentage is left as is).
func Handlers(d *Driver) map[string]http.Handler {
	return map[string]http.Handler{
		RouteStart: http.HandlerFunc(d.serveStart),
		RouteState: http.HandlerFunc(d.serveState),
		RouteAbort: http.HandlerFunc(d.serveAbort),
	}
}

func (d *Driver) serveStart(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(w, r)
	if err != nil {
		writeError(w, err)
		return
	}
	plan, err := ParsePlan(body)
	if err != nil {
		writeError(w, err)
		return
	}
	st, err := d.Start(r.Context(), plan)
	if err != nil {
		writeError(w, err)
		return
	}
	api.WriteData(w, http.StatusCreated, st)
}

func (d *Driver) serveState(w http.ResponseWriter, r *http.Request) {
	st, err := d.State(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	api.WriteData(w, http.StatusOK, st)
}

func (d *Driver) serveAbort(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(w, r)
	if err != nil {
		writeError(w, err)
		return
	}
	var req struct {
		Reason string `json:"reason"`
	}
	if len(body) > 0 {
		if err := decodeStrict(body, &req); err != nil {
			writeError(w, err)
			return
		}
	}
	if len(req.Reason) > maxReasonLen {
		writeError(w, invalid("reason is longer than %d bytes", maxReasonLen))
		return
	}
	st, err := d.Abort(r.Context(), req.Reason)
	if err != nil {
		writeError(w, err)
		return
	}
	api.WriteData(w, http.StatusOK, st)
}

// readBody reads at most maxBody bytes (413 beyond).
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return nil, pathstats.Errorf(pathstats.EPayloadTooLarge, "body is larger than %d bytes", maxBody)
	}
	if err != nil {
		return nil, invalid("cannot read body")
	}
	return body, nil
}

// writeError answers 503 for an unreachable backend, else as api.WriteError.
func writeError(w http.ResponseWriter, err error) {
	if pathstats.ErrorCode(err) == pathstats.EInternal && errors.Is(err, pathstats.ErrUnavailable) {
		err = pathstats.Errorf(pathstats.EUnavailable, "key-value store unavailable")
	}
	api.WriteError(w, err)
}
