package rollout

import (
	"strings"
	"testing"

	"github.com/pathstats/pathstats"
)

// TestParsePlanMessages: a bad plan names the field and the rule, never a
// Go type, and echoes at most 64 bytes of input.
func TestParsePlanMessages(t *testing.T) {
	long := strings.Repeat("9", 200)
	for _, tc := range []struct{ body, want string }{
		{`{"steps":"x","dwell":"1m"}`, "steps: must be an array of numbers"},
		{`{"steps":[1,"2"],"dwell":"1m"}`, "steps: must be an array of numbers"},
		{`{"steps":[1],"dwell":5}`, `dwell: must be a duration string such as "10m"`},
		{`{"steps":[1],"dwell":"` + long + `"}`, `dwell: "` + long[:64] + `…" is not a duration such as "10m"`},
		{`{"steps":[1],"dwell":"1m","gates":{"maxP99Ms":"x"}}`, "gates.maxP99Ms: must be a number"},
		{`{"steps":[1],"dwell":"1m","gates":[]}`, "gates: must be an object"},
		{`{"steps":[1],"dwell":"1m","minSamples":1.5}`, "minSamples: must be an integer"},
		{`{"steps":[1],"dwell":"1m"} x`, "unexpected data after the JSON value at byte 27"},
		{`{"steps":[1],"dwell":"1m"}{}`, "unexpected data after the JSON value at byte 26"},
		{`[1]`, "body must be an object"},
	} {
		_, err := ParsePlan([]byte(tc.body))
		if pathstats.ErrorCode(err) != pathstats.EInvalidBody || pathstats.ErrorMessage(err) != tc.want {
			t.Errorf("%.50s: %v, want INVALID_BODY %q", tc.body, err, tc.want)
		}
		if msg := pathstats.ErrorMessage(err); strings.Contains(msg, "Go ") || strings.Contains(msg, "rollout.") {
			t.Errorf("%.50s: message %q names a Go type", tc.body, msg)
		}
	}
}
