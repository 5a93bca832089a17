package pathstats

import (
	"context"
	"time"
)

// MigrationConfigKey is the KV key of the canary config (the plan's name).
const MigrationConfigKey = "migration:paths-api-config"

// MigrationConfig is the canary config of GET /api/admin/paths (the plan's
// PathsAPIMigrationConfig plus Version). Entries of the IP lists are IPs or
// CIDRs. Version increments on every change; PUT with If-Match compares it.
type MigrationConfig struct {
	NewAPIPercentage float64  `json:"newAPIPercentage"`
	ForceNewAPIIPs   []string `json:"forceNewAPIIPs"`
	ForceOldAPIIPs   []string `json:"forceOldAPIIPs"`
	EnableComparison bool     `json:"enableComparison"`
	UpdatedAt        string   `json:"updatedAt"`
	Version          uint64   `json:"version"`
}

// DefaultMigrationConfig is the plan's default: everyone on the old API.
func DefaultMigrationConfig() MigrationConfig {
	return MigrationConfig{ForceNewAPIIPs: []string{}, ForceOldAPIIPs: []string{}}
}

// ConfigChange is one entry of the migration config history.
type ConfigChange struct {
	ID     int64           `json:"id"`
	At     time.Time       `json:"at"`
	Actor  string          `json:"actor"`  // who: "admin", a node id for automatic changes
	Source string          `json:"source"` // manual | rollout | auto-rollback
	Reason string          `json:"reason"`
	Before MigrationConfig `json:"before"`
	After  MigrationConfig `json:"after"`
}

// ConfigHistory stores migration config changes (in SQL).
type ConfigHistory interface {
	AppendConfigChange(ctx context.Context, c ConfigChange) (int64, error)
	// ConfigChanges pages newest first: entries with ID < before (0 = from
	// the newest), at most limit; total is the number of entries.
	ConfigChanges(ctx context.Context, before int64, limit int) (changes []ConfigChange, total int, err error)
}

// ConfigUpdater changes the migration config atomically (compare-and-set)
// and records the change in the history.
type ConfigUpdater interface {
	// Update applies mutate to the current config and stores the result if
	// nobody changed it meanwhile (retrying on conflicts); ifMatch > 0 makes
	// it fail with EPreconditionFailed when the current version differs.
	Update(ctx context.Context, ifMatch uint64, actor, source, reason string, mutate func(*MigrationConfig) error) (MigrationConfig, error)
	// Current is the last good config this node holds (the default when
	// none was ever loaded).
	Current() MigrationConfig
}

// RouteStats are the canary router's observations of the new path over its
// sliding window, for rollout gates.
type RouteStats struct {
	Samples   int64
	ErrorRate float64 // percent of new-path answers that failed (5xx or over the latency SLO)
	P99Ms     float64
}
