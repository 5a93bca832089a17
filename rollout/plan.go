package rollout

import (
	"bytes"
	"encoding/json"
	"math"
	"time"

	"github.com/pathstats/pathstats"
	"github.com/pathstats/pathstats/internal/inputerr"
)

// Plan limits and defaults.
const (
	MaxSteps = 20
	// MinDwell is the shortest dwell accepted. Production plans use minutes;
	// the low bound exists so tests can run whole rollouts in milliseconds.
	MinDwell = 10 * time.Millisecond
	// MaxDwell is the longest dwell accepted.
	MaxDwell = 7 * 24 * time.Hour
	// DefaultMinSamples is the sample count the error-rate and p99 gates need
	// before they are evaluated, when the plan gives none.
	DefaultMinSamples = 100
	maxMinSamples     = 1_000_000_000
)

// DefaultGates are the gates a plan gets for the ones it leaves out.
func DefaultGates() Gates {
	return Gates{MinAccuracy: 99, MaxErrorRate: 1, MaxP99Ms: 200}
}

// Duration is a time.Duration written in JSON as a Go duration string ("10m").
type Duration time.Duration

// MarshalJSON writes the duration as a string such as "10m0s".
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON reads a Go duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil || bytes.Equal(b, []byte("null")) {
		return invalid(`dwell: must be a duration string such as "10m"`)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return invalid(`dwell: %s is not a duration such as "10m"`, inputerr.Quote(s))
	}
	*d = Duration(v)
	return nil
}

// Gates are the health checks a step must pass after its dwell.
type Gates struct {
	// MinAccuracy is the lowest comparison accuracy in percent (0–100); it
	// is skipped while no comparison exists.
	MinAccuracy float64 `json:"minAccuracy"`
	// MaxErrorRate is the highest new-path error rate in percent (0–100).
	MaxErrorRate float64 `json:"maxErrorRate"`
	// MaxP99Ms is the highest new-path p99 latency in milliseconds (> 0).
	MaxP99Ms float64 `json:"maxP99Ms"`
}

// Plan is a staged rollout: newAPIPercentage goes through Steps, each held
// for Dwell and then checked against Gates.
type Plan struct {
	Steps []float64 `json:"steps"`
	Dwell Duration  `json:"dwell"`
	Gates Gates     `json:"gates"`
	// MinSamples is the sample count the error-rate and p99 gates need;
	// 0 means DefaultMinSamples.
	MinSamples int64 `json:"minSamples"`
}

// planBody is the request shape: absent gates take DefaultGates.
type planBody struct {
	Steps []float64 `json:"steps"`
	Dwell *Duration `json:"dwell"`
	Gates *struct {
		MinAccuracy  *float64 `json:"minAccuracy"`
		MaxErrorRate *float64 `json:"maxErrorRate"`
		MaxP99Ms     *float64 `json:"maxP99Ms"`
	} `json:"gates"`
	MinSamples *int64 `json:"minSamples"`
}

// ParsePlan strictly decodes a JSON plan (unknown fields, trailing data and
// wrong types are rejected), fills in defaults and validates it. Errors are
// *pathstats.Error with code INVALID_BODY.
func ParsePlan(data []byte) (Plan, error) {
	var b planBody
	if err := decodeStrict(data, &b); err != nil {
		return Plan{}, err
	}
	if b.Dwell == nil {
		return Plan{}, invalid("dwell is required")
	}
	p := Plan{Steps: b.Steps, Dwell: *b.Dwell, Gates: DefaultGates(), MinSamples: DefaultMinSamples}
	if b.Gates != nil {
		setIf(&p.Gates.MinAccuracy, b.Gates.MinAccuracy)
		setIf(&p.Gates.MaxErrorRate, b.Gates.MaxErrorRate)
		setIf(&p.Gates.MaxP99Ms, b.Gates.MaxP99Ms)
	}
	if b.MinSamples != nil {
		if *b.MinSamples < 1 {
			return Plan{}, invalid("minSamples must be at least 1")
		}
		p.MinSamples = *b.MinSamples
	}
	return p, p.Validate()
}

func setIf(dst, v *float64) {
	if v != nil {
		*dst = *v
	}
}

// decodeStrict decodes exactly one JSON value into v, rejecting unknown
// fields and trailing data; messages name the field and the rule.
func decodeStrict(data []byte, v any) error {
	return inputerr.DecodeJSON(data, v)
}

// Validate checks the plan: 1–20 steps, strictly increasing, each in
// (0, 100] with at most two decimals; dwell in [MinDwell, MaxDwell]; gates
// in range; MinSamples >= 0 (0 = default).
func (p Plan) Validate() error {
	if n := len(p.Steps); n < 1 || n > MaxSteps {
		return invalid("steps must have 1 to %d entries, got %d", MaxSteps, n)
	}
	for i, s := range p.Steps {
		if math.IsNaN(s) || s <= 0 || s > 100 {
			return invalid("steps[%d] = %v is not in (0, 100]", i, s)
		}
		if c := s * 100; math.Abs(c-math.Round(c)) > 1e-6 {
			return invalid("steps[%d] = %v has more than two decimals", i, s)
		}
		if i > 0 && s <= p.Steps[i-1] {
			return invalid("steps must be strictly increasing: steps[%d] = %v after %v", i, s, p.Steps[i-1])
		}
	}
	if d := time.Duration(p.Dwell); d < MinDwell || d > MaxDwell {
		return invalid("dwell %v is not between %v and %v", d, MinDwell, MaxDwell)
	}
	g := p.Gates
	if !inRange(g.MinAccuracy, 0, 100) {
		return invalid("gates.minAccuracy %v is not in [0, 100]", g.MinAccuracy)
	}
	if !inRange(g.MaxErrorRate, 0, 100) {
		return invalid("gates.maxErrorRate %v is not in [0, 100]", g.MaxErrorRate)
	}
	if math.IsNaN(g.MaxP99Ms) || math.IsInf(g.MaxP99Ms, 0) || g.MaxP99Ms <= 0 {
		return invalid("gates.maxP99Ms %v must be above 0", g.MaxP99Ms)
	}
	if p.MinSamples < 0 || p.MinSamples > maxMinSamples {
		return invalid("minSamples %d is not in [1, %d]", p.MinSamples, maxMinSamples)
	}
	return nil
}

func inRange(v, lo, hi float64) bool { return !math.IsNaN(v) && v >= lo && v <= hi }

// minSamples is MinSamples with its default.
func (p Plan) minSamples() int64 {
	if p.MinSamples <= 0 {
		return DefaultMinSamples
	}
	return p.MinSamples
}

func invalid(format string, args ...any) error {
	return pathstats.Errorf(pathstats.EInvalidBody, format, args...)
}
