package migration

import (
	"math"
	"slices"
	"testing"

	"github.com/pathstats/pathstats"
)

func TestValidateAndNormalize(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		p    float64
		code string
		want float64
	}{
		{0, "", 0}, {100, "", 100}, {0.01, "", 0.01}, {50.12, "", 50.12}, {99.99, "", 99.99},
		{-0.01, pathstats.EInvalidPercentage, 0}, {100.01, pathstats.EInvalidPercentage, 0},
		{0.001, pathstats.EInvalidPercentage, 0}, {math.NaN(), pathstats.EInvalidPercentage, 0},
		{math.Inf(1), pathstats.EInvalidPercentage, 0},
	} {
		c := pathstats.DefaultMigrationConfig()
		c.NewAPIPercentage = tc.p
		err := Validate(c)
		if tc.code == "" {
			n, nerr := normalizeConfig(c)
			if err != nil || nerr != nil || n.NewAPIPercentage != tc.want {
				t.Errorf("%v: %v, normalized %v", tc.p, err, n.NewAPIPercentage)
			}
		} else if pathstats.ErrorCode(err) != tc.code {
			t.Errorf("%v: %v, want %s", tc.p, err, tc.code)
		}
	}
	c := pathstats.MigrationConfig{
		ForceNewAPIIPs: []string{" 10.0.0.1 ", "10.0.0.1", "::FFFF:10.0.0.1", "::ffff:10.0.0.0/104", "fd00::1/8"},
	}
	n, err := normalizeConfig(c)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(n.ForceNewAPIIPs, []string{"10.0.0.1", "10.0.0.0/8", "fd00::/8"}) || n.ForceOldAPIIPs == nil {
		t.Fatalf("normalized %q %v", n.ForceNewAPIIPs, n.ForceOldAPIIPs)
	}
	for _, bad := range []string{"", "10.0.0", "10.0.0.1/", "10.0.0.1/-1", "::1/129", "example.com", "fe80::1%eth0"} {
		if err := Validate(pathstats.MigrationConfig{ForceOldAPIIPs: []string{bad}}); pathstats.ErrorCode(err) != pathstats.EInvalidBody {
			t.Errorf("%q: %v", bad, err)
		}
	}
	if err := Validate(pathstats.MigrationConfig{ForceOldAPIIPs: make([]string, MaxListEntries+1)}); pathstats.ErrorCode(err) != pathstats.EInvalidBody {
		t.Errorf("10,001 entries: %v", err)
	}
}
