package api

import (
	"context"
	"errors"
	"net/http"
	"regexp"
	"strings"
	"time"
)

// ReadyTimeout bounds the readiness checks of one /readyz request.
const ReadyTimeout = 2 * time.Second

// maxCheckMessage bounds the error text reported per check.
const maxCheckMessage = 200

// Healthz answers 200 {"status":"ok"} while the process serves requests.
func Healthz() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
}

// readiness is the body of a /readyz answer.
type readiness struct {
	Status string            `json:"status"`
	Checks map[string]string `json:"checks"`
}

// Readyz runs the checks concurrently, within ReadyTimeout, and answers 200
// when all pass, else 503; each check reports "ok" or a short error text.
func Readyz(checks map[string]func(context.Context) error) http.Handler {
	return readyz(checks, ReadyTimeout)
}

func readyz(checks map[string]func(context.Context) error, timeout time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), timeout)
		defer cancel()
		res := readiness{Status: "ok", Checks: runChecks(ctx, checks)}
		status := http.StatusOK
		for _, msg := range res.Checks {
			if msg != "ok" {
				res.Status, status = "unavailable", http.StatusServiceUnavailable
			}
		}
		WriteJSON(w, status, res)
	})
}

// runChecks runs every check in its own goroutine; a check still running
// when ctx ends is reported as "timeout".
func runChecks(ctx context.Context, checks map[string]func(context.Context) error) map[string]string {
	type result struct{ name, msg string }
	ch := make(chan result, len(checks))
	out := make(map[string]string, len(checks))
	for name, check := range checks {
		out[name] = "timeout"
		go func() {
			ch <- result{name, checkMessage(runCheck(ctx, check))}
		}()
	}
	for range len(checks) {
		select {
		case res := <-ch:
			out[res.name] = res.msg
		case <-ctx.Done():
			for {
				select {
				case res := <-ch:
					out[res.name] = res.msg
				default:
					return out
				}
			}
		}
	}
	return out
}

// runCheck runs one check, turning a panic into an error.
func runCheck(ctx context.Context, check func(context.Context) error) (err error) {
	defer func() {
		if recover() != nil {
			err = errors.New("check panicked")
		}
	}()
	return check(ctx)
}

var (
	urlUserinfo = regexp.MustCompile(`([A-Za-z][A-Za-z0-9+.-]*://)[^/@\s]+@`)
	secretParam = regexp.MustCompile(`(?i)\b(password|passwd|pwd|token|secret)=[^\s&]+`)
	// fsPath is an absolute file system path (after a space, quote, '(',
	// '[', '=' or at the start) or a file:// URL.
	fsPath = regexp.MustCompile(`(^|[\s"'(\[=])/[^\s"',;:)\]]+|file://[^\s"',;)\]]*`)
)

// maskPaths replaces file system paths in msg by <path>.
func maskPaths(msg string) string {
	return fsPath.ReplaceAllStringFunc(msg, func(m string) string {
		if strings.HasPrefix(m, "file://") {
			return "file://<path>"
		}
		if m[0] != '/' {
			return m[:1] + "<path>"
		}
		return "<path>"
	})
}

// checkMessage is the client-safe text of a check result: "ok", "timeout",
// or the error shortened, with URL credentials, secret parameters and file
// system paths masked.
func checkMessage(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	}
	msg := urlUserinfo.ReplaceAllString(err.Error(), "${1}***@")
	msg = secretParam.ReplaceAllString(msg, "${1}=***")
	msg = maskPaths(msg)
	if len(msg) > maxCheckMessage {
		msg = strings.ToValidUTF8(msg[:maxCheckMessage], "") + "…"
	}
	if msg == "" || msg == "ok" {
		msg = "failed"
	}
	return msg
}
