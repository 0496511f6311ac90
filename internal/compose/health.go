package compose

import (
	"context"
	"fmt"
	"time"

	ctypes "github.com/compose-spec/compose-go/v2/types"

	"github.com/ferryvm/ferry/internal/api/types"
	"github.com/ferryvm/ferry/internal/errdefs"
)

// healthPoll is how often a wait for health asks the daemon.
var healthPoll = 500 * time.Millisecond

// healthcheck is a service's healthcheck as the machine's (nil: the
// image's HEALTHCHECK, if any).
func healthcheck(hc *ctypes.HealthCheckConfig) (*types.Healthcheck, error) {
	if hc == nil {
		return nil, nil
	}
	if hc.Disable {
		return &types.Healthcheck{Test: []string{"NONE"}}, nil
	}
	h := &types.Healthcheck{Test: []string(hc.Test)}
	for _, d := range []struct {
		in  *ctypes.Duration
		out *time.Duration
	}{{hc.Interval, &h.Interval}, {hc.Timeout, &h.Timeout}, {hc.StartPeriod, &h.StartPeriod}, {hc.StartInterval, &h.StartInterval}} {
		if d.in != nil {
			*d.out = time.Duration(*d.in)
		}
	}
	if hc.Retries != nil {
		h.Retries = int(*hc.Retries)
	}
	if err := h.Validate(); err != nil {
		return nil, fmt.Errorf("healthcheck: %v: %w", err, errdefs.ErrInvalidArgument)
	}
	return h, nil
}

// waitHealthy waits until every replica of s is started and, when it has a
// health check, healthy. need says a health check is required (depends_on
// service_healthy): a replica without one is then an error, as in docker
// compose. An unhealthy replica, or one that stops, fails the wait with its
// last health output.
func waitHealthy(ctx context.Context, c Client, p *Plan, s *Service, need bool) error {
	for n := 1; n <= s.Scale; n++ {
		if err := waitReplicaHealthy(ctx, c, p.Project, p.MachineName(s, n), need); err != nil {
			return err
		}
	}
	return nil
}

func waitReplicaHealthy(ctx context.Context, c Client, app, name string, need bool) error {
	t := time.NewTicker(healthPoll)
	defer t.Stop()
	for {
		m, err := c.GetMachine(ctx, app, name)
		if err != nil {
			return fmt.Errorf("wait for %s: %w", name, err)
		}
		switch {
		case m.State == types.StateStopped || m.State == types.StateFailed || m.State == types.StateDestroyed:
			return fmt.Errorf("%s %s while waiting for it to be healthy%s: %w", name, m.State, exitNote(m), errdefs.ErrConflict)
		case m.State != types.StateStarted:
		case m.Health == nil && need:
			return fmt.Errorf("%s has no healthcheck (set one in the service or the image): %w", name, errdefs.ErrInvalidArgument)
		case m.Health == nil, m.Health.Status == types.HealthHealthy:
			return nil
		case m.Health.Status == types.HealthUnhealthy:
			return fmt.Errorf("%s is unhealthy%s: %w", name, m.Health.LastCheck(), errdefs.ErrConflict)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for %s to be healthy: %w", name, context.Cause(ctx))
		case <-t.C:
		}
	}
}

func exitNote(m *types.Machine) string {
	if m.LastExit == nil {
		return ""
	}
	return fmt.Sprintf(" (exit %d)", m.LastExit.ExitCode)
}
