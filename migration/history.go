package migration

import (
	"net/http"
	"strconv"

	"github.com/pathstats/pathstats"
	"github.com/pathstats/pathstats/api"
)

// History paging limits.
const (
	defaultHistoryLimit = 50
	maxHistoryLimit     = 200
)

// historyPage is the data of GET …/migration-config/history. NextBefore is
// the before= value of the next (older) page, null on the last page.
type historyPage struct {
	Items      []pathstats.ConfigChange `json:"items"`
	Total      int                      `json:"total"`
	NextBefore *int64                   `json:"nextBefore"`
}

// serveHistory pages through the changes, newest first:
// ?before=<id> (entries with a smaller id) &limit=<1..200, default 50;
// larger values are clamped to 200>.
func (s *Store) serveHistory(w http.ResponseWriter, r *http.Request) {
	before, limit, err := historyParams(r)
	if err != nil {
		api.WriteError(w, err)
		return
	}
	if s.hist == nil {
		api.WriteError(w, publicError(errHistoryUnavailable))
		return
	}
	items, total, err := s.hist.ConfigChanges(r.Context(), before, limit+1)
	if err != nil {
		s.log.Error("read migration config history", "err", err)
		api.WriteError(w, pathstats.Errorf(pathstats.EUnavailable, "config history unavailable, try again"))
		return
	}
	page := historyPage{Items: items, Total: total}
	if len(items) > limit {
		page.Items = items[:limit]
		next := page.Items[limit-1].ID
		page.NextBefore = &next
	}
	api.WriteData(w, http.StatusOK, page)
}

// historyParams parses before (a positive id, default 0 = newest) and limit.
func historyParams(r *http.Request) (int64, int, error) {
	q := r.URL.Query()
	var before int64
	if v := q.Get("before"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 {
			return 0, 0, pathstats.Errorf(pathstats.EInvalidParameter, "before must be a positive integer")
		}
		before = n
	}
	limit := defaultHistoryLimit
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return 0, 0, pathstats.Errorf(pathstats.EInvalidParameter, "limit must be a positive integer")
		}
		limit = min(n, maxHistoryLimit)
	}
	return before, limit, nil
}
