package migration

import (
	"context"
	"log/slog"
	"net/http"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/pathstats/pathstats"
	"github.com/pathstats/pathstats/api"
	"github.com/pathstats/pathstats/internal/lograte"
)

// Routing reasons, sent in the RouteHeader response header.
const (
	ReasonForcedOld  = "forced-old"
	ReasonForcedNew  = "forced-new"
	ReasonPercentage = "percentage"
	ReasonLegacyOff  = "legacy-off"
)

// RouteHeader is the response header naming the routing reason.
const RouteHeader = "X-Pathstats-Route"

var reasons = [...]string{ReasonForcedOld, ReasonForcedNew, ReasonPercentage, ReasonLegacyOff}

// RouterOptions configure a Router.
type RouterOptions struct {
	// Config returns the current migration config (required).
	Config func() pathstats.MigrationConfig
	// New and Old are the new read path and the legacy system (required).
	New, Old api.PathsSource
	// LegacyOff reports that the legacy system is off or decommissioned:
	// everything then goes to New. Nil means never.
	LegacyOff func() bool
	// ClientIP finds the client address; nil uses the socket peer.
	ClientIP *ClientIP
	// Monitor receives the new path's outcomes; may be nil.
	Monitor *Monitor
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Shadow, when set, compares a sample of answers with the other source
	// while the config's enableComparison is on.
	Shadow *Shadow
	// Logger receives failed answers (rate-limited); nil: slog.Default().
	Logger *slog.Logger
}

// Router is the canary switch of GET /api/admin/paths.
type Router struct {
	opts  RouterOptions
	lists atomic.Pointer[compiledLists]
	// counts[target][reason]; target 0 = old, 1 = new.
	counts [2][len(reasons)]atomic.Uint64
	errs   [2]atomic.Uint64
	lim    lograte.Limiter // failed answers, one line per target and interval
}

// compiledLists are the IP lists of one config version, prebuilt for
// matching; they are rebuilt only when the config changes.
type compiledLists struct {
	version    uint64
	nOld, nNew int
	firstOld   string
	firstNew   string
	forceOld   *ipSet
	forceNew   *ipSet
}

// NewRouter returns a Router.
func NewRouter(opts RouterOptions) *Router {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Router{opts: opts}
}

// Decide routes a client for cfg: legacy off sends everything new;
// otherwise forceOldAPIIPs wins over forceNewAPIIPs, which wins over the
// percentage (see UsesNew). reason is one of the Reason constants.
func (r *Router) Decide(ip netip.Addr, cfg pathstats.MigrationConfig) (useNew bool, reason string) {
	if r.opts.LegacyOff != nil && r.opts.LegacyOff() {
		return true, ReasonLegacyOff
	}
	ip = normIP(ip)
	l := r.compiled(&cfg)
	if l.forceOld.contains(ip) {
		return false, ReasonForcedOld
	}
	if l.forceNew.contains(ip) {
		return true, ReasonForcedNew
	}
	return UsesNew(ip, cfg.NewAPIPercentage), ReasonPercentage
}

// compiled returns the prebuilt lists of cfg, building them when the
// version (or, for unversioned configs, the lists' shape) changed.
func (r *Router) compiled(cfg *pathstats.MigrationConfig) *compiledLists {
	if l := r.lists.Load(); l != nil && l.matches(cfg) {
		return l
	}
	l := &compiledLists{version: cfg.Version, nOld: len(cfg.ForceOldAPIIPs), nNew: len(cfg.ForceNewAPIIPs)}
	if l.nOld > 0 {
		l.firstOld = cfg.ForceOldAPIIPs[0]
	}
	if l.nNew > 0 {
		l.firstNew = cfg.ForceNewAPIIPs[0]
	}
	var err error
	if l.forceOld, err = newIPSet(cfg.ForceOldAPIIPs); err != nil {
		slog.Warn("canary router: invalid forceOldAPIIPs entry skipped", "version", cfg.Version, "err", err)
	}
	if l.forceNew, err = newIPSet(cfg.ForceNewAPIIPs); err != nil {
		slog.Warn("canary router: invalid forceNewAPIIPs entry skipped", "version", cfg.Version, "err", err)
	}
	r.lists.Store(l)
	return l
}

// fail counts a failed answer (canary errors_total{target}) and logs it,
// rate-limited per target.
func (r *Router) fail(useNew bool, reason string, err error) {
	r.errs[b2i(useNew)].Add(1)
	target := "old"
	if useNew {
		target = "new"
	}
	r.lim.Log(r.opts.Logger, slog.LevelWarn, target, "canary: paths answer failed", "target", target,
		"reason", reason, "code", pathstats.ErrorCode(err), "err", err)
}

func (l *compiledLists) matches(cfg *pathstats.MigrationConfig) bool {
	if l.version != cfg.Version || l.nOld != len(cfg.ForceOldAPIIPs) || l.nNew != len(cfg.ForceNewAPIIPs) {
		return false
	}
	return (l.nOld == 0 || l.firstOld == cfg.ForceOldAPIIPs[0]) &&
		(l.nNew == 0 || l.firstNew == cfg.ForceNewAPIIPs[0])
}

// ServeHTTP answers a path list from the source chosen for the client. The
// response carries the reason in X-Pathstats-Route and the data source in
// X-Pathstats-Data-Source and metadata.dataSource.
func (r *Router) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	q, err := api.ParsePathQuery(req.URL.Query())
	if err != nil {
		api.WriteError(w, err)
		return
	}
	ip := peerAddr(req.RemoteAddr)
	if r.opts.ClientIP != nil {
		ip = r.opts.ClientIP.From(req)
	}
	useNew, reason := r.Decide(ip, r.opts.Config())
	r.count(useNew, reason)
	w.Header().Set(RouteHeader, reason)
	res, err := r.query(req.Context(), useNew, q)
	if err != nil {
		r.fail(useNew, reason, err)
		api.WriteError(w, err)
		return
	}
	api.WritePaths(w, q, res)
	if sh := r.opts.Shadow; sh != nil && r.opts.Config().EnableComparison && (r.opts.LegacyOff == nil || !r.opts.LegacyOff()) {
		other := r.opts.Old
		if !useNew {
			other = r.opts.New
		}
		sh.After(q, res, other)
	}
}

// query calls the chosen source, reporting the new path's outcome (ok, or
// a 5xx-class error; latency) to the monitor.
func (r *Router) query(ctx context.Context, useNew bool, q pathstats.PathQuery) (api.PathsResult, error) {
	if !useNew {
		return r.opts.Old.Paths(ctx, q)
	}
	start := r.opts.Now()
	res, err := r.opts.New.Paths(ctx, q)
	if r.opts.Monitor != nil && ctx.Err() == nil { // a client that left says nothing about the path
		ok := err == nil || pathstats.HTTPStatus(pathstats.ErrorCode(err)) < 500
		r.opts.Monitor.Observe(ok, r.opts.Now().Sub(start))
	}
	return res, err
}

func (r *Router) count(useNew bool, reason string) {
	for i, s := range reasons {
		if s == reason {
			r.counts[b2i(useNew)][i].Add(1)
			return
		}
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// RouterStats count the router's decisions since start.
type RouterStats struct {
	New, Old uint64 // requests routed to each path
	// ByReason counts decisions by "new/<reason>" and "old/<reason>".
	ByReason map[string]uint64
	// NewErrors and OldErrors count requests answered with an error.
	NewErrors, OldErrors uint64
}

// Stats returns the decision counters.
func (r *Router) Stats() RouterStats {
	s := RouterStats{ByReason: make(map[string]uint64, 2*len(reasons))}
	for t, name := range [2]string{"old", "new"} {
		for i, reason := range reasons {
			n := r.counts[t][i].Load()
			if n == 0 {
				continue
			}
			s.ByReason[name+"/"+reason] = n
			if t == 1 {
				s.New += n
			} else {
				s.Old += n
			}
		}
	}
	s.OldErrors, s.NewErrors = r.errs[0].Load(), r.errs[1].Load()
	return s
}
