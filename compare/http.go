package compare

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/pathstats/pathstats"
	"github.com/pathstats/pathstats/api"
)

// Parameter bounds of the compare endpoint.
const (
	MinWindow        = time.Hour
	MaxWindow        = 720 * time.Hour
	DefaultWindow    = 24 * time.Hour
	DefaultTolerance = 0.01
)

// RunFunc runs one comparison over window with the open-hour tolerance.
type RunFunc func(ctx context.Context, window time.Duration, tolerance float64) (Report, error)

// Handler serves GET /api/admin/paths/compare: window (a Go duration,
// 1h–720h, default 24h) and tolerance (0–1, default 0.01); bad values
// answer 400 INVALID_PARAMETER. The report comes in the standard envelope.
func Handler(run RunFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			api.WriteError(w, pathstats.Errorf(pathstats.EMethodNotAllowed, "use GET"))
			return
		}
		window, tol, err := ParseParams(r)
		if err != nil {
			api.WriteError(w, err)
			return
		}
		rep, err := run(r.Context(), window, tol)
		if err != nil {
			api.WriteError(w, err)
			return
		}
		api.WriteData(w, http.StatusOK, rep)
	})
}

// Runner returns the RunFunc of Handler for base: each call runs base with
// the window and tolerance asked (a tolerance of 0 means exact).
func Runner(base Options) RunFunc {
	return func(ctx context.Context, window time.Duration, tolerance float64) (Report, error) {
		o := base
		o.Window, o.Tolerance = window, tolerance
		if tolerance == 0 {
			o.Tolerance = -1
		}
		return Run(ctx, o)
	}
}

// ParseParams reads and validates the window and tolerance parameters.
func ParseParams(r *http.Request) (window time.Duration, tolerance float64, err error) {
	q := r.URL.Query()
	window, tolerance = DefaultWindow, DefaultTolerance
	if v := q.Get("window"); v != "" {
		d, perr := time.ParseDuration(v)
		if perr != nil || d < MinWindow || d > MaxWindow {
			return 0, 0, pathstats.Errorf(pathstats.EInvalidParameter, "window must be a duration from 1h to 720h")
		}
		window = d
	}
	if v := q.Get("tolerance"); v != "" {
		f, perr := strconv.ParseFloat(v, 64)
		if perr != nil || !(f >= 0 && f <= 1) {
			return 0, 0, pathstats.Errorf(pathstats.EInvalidParameter, "tolerance must be a number from 0 to 1")
		}
		tolerance = f
	}
	return window, tolerance, nil
}
