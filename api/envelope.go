// Package api holds the admin listener's HTTP handlers (DESIGN §5): the JSON
// envelope and error mapping, bearer-token auth, the ingest endpoint
// POST /api/v1/events, health checks and the admin mux that wires them.
package api

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/pathstats/pathstats"
	"github.com/pathstats/pathstats/internal/lograte"
)

// envelope is the success shape of the contract.
type envelope struct {
	Success   bool   `json:"success"`
	Data      any    `json:"data"`
	Timestamp string `json:"timestamp"`
}

// errorBody is the error shape of the contract.
type errorBody struct {
	Success bool   `json:"success"`
	Error   string `json:"error"`
	Message string `json:"message"`
	Details any    `json:"details,omitempty"`
}

// logLimit rate-limits the package's log lines that have no component of
// their own (internal errors, storage errors answered as 503).
var logLimit lograte.Limiter

// WriteJSON writes v as JSON with the given status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		slog.Error("encode response", "err", err)
		status = http.StatusInternalServerError
		data = []byte(`{"success":false,"error":"INTERNAL","message":"internal error"}`)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	data = append(data, '\n')
	_, _ = w.Write(data)
}

// WriteData writes the success envelope {"success":true,"data":…,"timestamp":…}.
func WriteData(w http.ResponseWriter, status int, data any) {
	WriteJSON(w, status, envelope{
		Success:   true,
		Data:      data,
		Timestamp: time.Now().UTC().Format(time.RFC3339),
	})
}

// WriteError writes the error envelope for err with the status of its code.
// An error that is not a *pathstats.Error is logged and answered as a generic
// 500 INTERNAL, so no internals leak.
func WriteError(w http.ResponseWriter, err error) {
	code := pathstats.ErrorCode(err)
	body := errorBody{Error: code, Message: pathstats.ErrorMessage(err)}
	var pe *pathstats.Error
	if errors.As(err, &pe) {
		body.Details = pe.Details
	} else {
		logLimit.Error(slog.Default(), "internal error", "err", err)
	}
	WriteJSON(w, pathstats.HTTPStatus(code), body)
}
