package dockerapi

import (
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"

	"github.com/ferryvm/ferry/internal/api/types"
)

// Health checks are the machine's (its config's over its image's
// HEALTHCHECK, run by the daemon through exec in the guest); these are
// their Docker shapes.

// healthcheck is a create request's Config.Healthcheck as the machine's:
// Test [] keeps the image's test, ["NONE"] turns checks off, ["CMD", ...]
// and ["CMD-SHELL", cmd] are run as Docker runs them; zero durations and
// retries inherit.
func healthcheck(h *container.HealthConfig) (*types.Healthcheck, error) {
	if h == nil {
		return nil, nil
	}
	hc := &types.Healthcheck{Test: h.Test, Interval: h.Interval, Timeout: h.Timeout, StartPeriod: h.StartPeriod,
		StartInterval: h.StartInterval, Retries: h.Retries}
	if hc.Disabled() {
		hc = &types.Healthcheck{Test: []string{"NONE"}}
	}
	if err := hc.Validate(); err != nil {
		return nil, invalid("healthcheck: %v", err)
	}
	return hc, nil
}

// healthConfigView is the check inspect shows in Config.Healthcheck: the
// container's, else its image's.
func healthConfigView(m *types.Machine) *container.HealthConfig {
	hc := m.Config.Healthcheck
	if hc == nil {
		hc = m.ImageConfig.Healthcheck
	}
	if hc == nil {
		return nil
	}
	return &container.HealthConfig{Test: hc.Test, Interval: hc.Interval, Timeout: hc.Timeout, StartPeriod: hc.StartPeriod,
		StartInterval: hc.StartInterval, Retries: hc.Retries}
}

// healthView is State.Health: nil for a machine without a running check.
func healthView(h *types.Health) *container.Health {
	if h == nil {
		return nil
	}
	out := &container.Health{Status: container.HealthStatus(h.Status), FailingStreak: h.FailingStreak,
		Log: make([]*container.HealthcheckResult, 0, len(h.Log))}
	for _, r := range h.Log {
		out.Log = append(out.Log, &container.HealthcheckResult{Start: r.Start, End: r.End, ExitCode: r.ExitCode, Output: r.Output})
	}
	return out
}

// healthSummary is a list entry's Health.
func healthSummary(h *types.Health) *container.HealthSummary {
	if h == nil {
		return &container.HealthSummary{Status: container.NoHealthcheck}
	}
	return &container.HealthSummary{Status: container.HealthStatus(h.Status), FailingStreak: h.FailingStreak}
}

// healthStatus is what the health filter matches.
func healthStatus(m *types.Machine) container.HealthStatus {
	if m.Health == nil {
		return container.NoHealthcheck
	}
	return container.HealthStatus(m.Health.Status)
}

// healthAction is the health_status event dockerd sends on a change.
func healthAction(e types.Event) events.Action {
	return events.Action(string(events.ActionHealthStatus) + ": " + e.Status)
}
