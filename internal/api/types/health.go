package types

import (
	"fmt"
	"strings"
	"time"
)

// Healthcheck is a machine's health check, shaped like Docker's
// (Config.Healthcheck, the image's HEALTHCHECK). Test is ["NONE"] (no check,
// not even the image's), ["CMD", argv...], ["CMD-SHELL", command] (run by
// /bin/sh -c) or empty (the image's test). Zero durations and retries take
// the image's values, then Docker's defaults.
type Healthcheck struct {
	Test          []string      `json:"test,omitempty"`
	Interval      time.Duration `json:"interval,omitempty"`       // between checks once started (default 30 s)
	Timeout       time.Duration `json:"timeout,omitempty"`        // one check's limit (default 30 s)
	StartPeriod   time.Duration `json:"start_period,omitempty"`   // failures in it do not count (default 0)
	StartInterval time.Duration `json:"start_interval,omitempty"` // between checks in the start period (default 5 s)
	Retries       int           `json:"retries,omitempty"`        // consecutive failures before unhealthy (default 3)
}

// Disabled reports whether h turns health checking off.
func (h *Healthcheck) Disabled() bool {
	return h != nil && len(h.Test) > 0 && h.Test[0] == "NONE"
}

// Validate reports h's first problem.
func (h *Healthcheck) Validate() error {
	if h == nil {
		return nil
	}
	if len(h.Test) > 0 {
		switch h.Test[0] {
		case "NONE":
		case "CMD", "CMD-SHELL":
			if len(h.Test) < 2 || h.Test[1] == "" {
				return fmt.Errorf("test: %s needs a command", h.Test[0])
			}
			if h.Test[0] == "CMD-SHELL" && len(h.Test) > 2 {
				return fmt.Errorf("test: CMD-SHELL takes one command string")
			}
		default:
			return fmt.Errorf("test: %q: want NONE, CMD or CMD-SHELL first", h.Test[0])
		}
	}
	for name, d := range map[string]time.Duration{"interval": h.Interval, "timeout": h.Timeout, "start_interval": h.StartInterval} {
		if d != 0 && d < time.Millisecond {
			return fmt.Errorf("%s: %s is below 1ms", name, d)
		}
	}
	if h.StartPeriod < 0 {
		return fmt.Errorf("start_period: %s is negative", h.StartPeriod)
	}
	if h.Retries < 0 {
		return fmt.Errorf("retries: %d is negative", h.Retries)
	}
	return nil
}

// Health statuses, Docker's.
const (
	HealthStarting  = "starting"
	HealthHealthy   = "healthy"
	HealthUnhealthy = "unhealthy"
)

// Health is a started machine's health: its status, its current streak of
// failed checks and its last few results, oldest first.
type Health struct {
	Status        string         `json:"status"`
	FailingStreak int            `json:"failing_streak"`
	Log           []HealthResult `json:"log,omitempty"`
}

// LastCheck names h's last check for an error message,
// ` (last check: exit N: "output")`, or "" when there is none.
func (h *Health) LastCheck() string {
	if h == nil || len(h.Log) == 0 {
		return ""
	}
	r := h.Log[len(h.Log)-1]
	return fmt.Sprintf(" (last check: exit %d: %q)", r.ExitCode, strings.TrimSpace(r.Output))
}

// HealthResult is one check: when it ran, its exit code (-1 when it could
// not run or timed out) and the start of its output.
type HealthResult struct {
	Start    time.Time `json:"start"`
	End      time.Time `json:"end"`
	ExitCode int       `json:"exit_code"`
	Output   string    `json:"output"`
}

// Note is what docker ps adds to a running container's "Up …" status:
// " (healthy)", " (unhealthy)", " (health: starting)"; "" without a check.
func (h *Health) Note() string {
	switch {
	case h == nil:
		return ""
	case h.Status == HealthStarting:
		return " (health: starting)"
	}
	return " (" + h.Status + ")"
}
