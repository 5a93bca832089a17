package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/pathstats/pathstats"
)

func TestWriteData(t *testing.T) {
	w := httptest.NewRecorder()
	WriteData(w, 201, map[string]int{"n": 1})
	var body struct {
		Success   bool           `json:"success"`
		Data      map[string]int `json:"data"`
		Timestamp string         `json:"timestamp"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || w.Code != 201 {
		t.Fatalf("%d %s %v", w.Code, w.Body, err)
	}
	ts, err := time.Parse(time.RFC3339, body.Timestamp)
	if !body.Success || body.Data["n"] != 1 || err != nil || time.Since(ts) > time.Minute {
		t.Fatalf("body %+v (%v)", body, err)
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/json; charset=utf-8" {
		t.Errorf("content type %q", ct)
	}
}

func TestWriteError(t *testing.T) {
	w := httptest.NewRecorder()
	WriteError(w, fmt.Errorf("wrapped: %w", &pathstats.Error{Code: pathstats.EConflict, Message: "stale", Details: []int{7}}))
	if w.Code != 409 || strings.TrimSpace(w.Body.String()) != `{"success":false,"error":"CONFLICT","message":"stale","details":[7]}` {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	w = httptest.NewRecorder()
	WriteError(w, pathstats.Errorf(pathstats.EGone, "gone"))
	if w.Code != 410 || strings.Contains(w.Body.String(), "details") {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	w = httptest.NewRecorder()
	WriteError(w, errors.New("sql: password=hunter2 at /var/lib/x.go:12"))
	if w.Code != 500 || strings.TrimSpace(w.Body.String()) != `{"success":false,"error":"INTERNAL","message":"internal error"}` {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
}

func TestWriteJSONUnencodable(t *testing.T) {
	w := httptest.NewRecorder()
	WriteJSON(w, 200, map[string]any{"f": func() {}})
	if w.Code != 500 || !strings.Contains(w.Body.String(), `"INTERNAL"`) {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
}
