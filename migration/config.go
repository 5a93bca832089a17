// Package migration holds the canary (migration) config of
// GET /api/admin/paths: its validation, a Store that keeps it in KV under
// pathstats.MigrationConfigKey with compare-and-set updates and history, and
// its admin HTTP handlers (DESIGN §4–§6).
package migration

import (
	"math"
	"slices"
	"strings"

	"github.com/pathstats/pathstats"
	"github.com/pathstats/pathstats/internal/inputerr"
)

// MaxListEntries is the largest number of entries in forceNewAPIIPs or
// forceOldAPIIPs.
const MaxListEntries = 10_000

// Validate checks c: the percentage is finite, within 0–100 and has at most
// two decimals (EInvalidPercentage); every list entry is an IP or a CIDR
// (EInvalidBody) and each list has at most MaxListEntries entries
// (EInvalidBody). Store.Update also normalises the lists (canonical form,
// duplicates removed) before storing.
func Validate(c pathstats.MigrationConfig) error {
	_, err := normalizeConfig(c)
	return err
}

// normalizeConfig validates c and returns it with the percentage rounded to two
// decimals and the lists in canonical form, deduplicated, never nil.
func normalizeConfig(c pathstats.MigrationConfig) (pathstats.MigrationConfig, error) {
	p, err := checkPercentage(c.NewAPIPercentage)
	if err != nil {
		return c, err
	}
	c.NewAPIPercentage = p
	if c.ForceNewAPIIPs, err = normalizeList("forceNewAPIIPs", c.ForceNewAPIIPs); err != nil {
		return c, err
	}
	if c.ForceOldAPIIPs, err = normalizeList("forceOldAPIIPs", c.ForceOldAPIIPs); err != nil {
		return c, err
	}
	return c, nil
}

// checkPercentage accepts finite values in [0, 100] with at most two
// decimals and returns them rounded to exactly two.
func checkPercentage(p float64) (float64, error) {
	if math.IsNaN(p) || math.IsInf(p, 0) || p < 0 || p > 100 {
		return 0, pathstats.Errorf(pathstats.EInvalidPercentage, "newAPIPercentage: must be a number between 0 and 100")
	}
	hundredths := math.Round(p * 100)
	if math.Abs(p*100-hundredths) > 1e-6 {
		return 0, pathstats.Errorf(pathstats.EInvalidPercentage, "newAPIPercentage: must have at most two decimals")
	}
	return hundredths / 100, nil
}

// normalizeList parses every entry as an IP or CIDR (see parseIPEntry),
// rewrites it in canonical form (IPv4-mapped IPv6 as IPv4, prefixes masked)
// and drops duplicates, keeping the first occurrence's order.
func normalizeList(field string, in []string) ([]string, error) {
	if len(in) > MaxListEntries {
		return nil, pathstats.Errorf(pathstats.EInvalidBody, "%s: has %d entries, at most %d allowed", field, len(in), MaxListEntries)
	}
	out := make([]string, 0, len(in))
	seen := make(map[string]struct{}, len(in))
	for i, s := range in {
		canon, err := canonicalEntry(s)
		if err != nil {
			return nil, pathstats.Errorf(pathstats.EInvalidBody, "%s[%d]: %s: %v", field, i, inputerr.Quote(s), err)
		}
		if _, dup := seen[canon]; dup {
			continue
		}
		seen[canon] = struct{}{}
		out = append(out, canon)
	}
	return out, nil
}

// canonicalEntry returns the canonical form of an IP or CIDR entry: a CIDR
// stays a CIDR (10.0.0.1/32), an IP stays an IP.
func canonicalEntry(s string) (string, error) {
	p, err := parseIPEntry(s)
	if err != nil {
		return "", err
	}
	if !strings.Contains(s, "/") {
		return p.Addr().String(), nil
	}
	return p.String(), nil
}

// cloneConfig copies c so its lists can be changed without touching c's.
func cloneConfig(c pathstats.MigrationConfig) pathstats.MigrationConfig {
	c.ForceNewAPIIPs = slices.Clone(c.ForceNewAPIIPs)
	c.ForceOldAPIIPs = slices.Clone(c.ForceOldAPIIPs)
	if c.ForceNewAPIIPs == nil {
		c.ForceNewAPIIPs = []string{}
	}
	if c.ForceOldAPIIPs == nil {
		c.ForceOldAPIIPs = []string{}
	}
	return c
}

// sameSettings reports whether a and b route identically (version and
// updatedAt aside).
func sameSettings(a, b pathstats.MigrationConfig) bool {
	return a.NewAPIPercentage == b.NewAPIPercentage && a.EnableComparison == b.EnableComparison &&
		slices.Equal(a.ForceNewAPIIPs, b.ForceNewAPIIPs) && slices.Equal(a.ForceOldAPIIPs, b.ForceOldAPIIPs)
}
