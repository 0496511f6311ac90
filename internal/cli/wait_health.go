package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/ferryvm/ferry/internal/api/types"
	"github.com/ferryvm/ferry/internal/errdefs"
)

// healthPoll is how often wait --state healthy asks the daemon.
var healthPoll = 250 * time.Millisecond

// waitHealthy is wait --state healthy: each machine in turn until its
// health check passes; an unhealthy or stopped machine, or one without a
// check, fails the wait.
func waitHealthy(ctx context.Context, g *globals, app string, names []string, timeout time.Duration) error {
	c, err := g.apiClient()
	if err != nil {
		return err
	}
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, timeout, fmt.Errorf("--timeout %s passed: %w", timeout, errdefs.ErrTimeout))
		defer cancel()
	}
	t := time.NewTicker(healthPoll)
	defer t.Stop()
	for _, n := range names {
		for {
			m, err := c.GetMachine(ctx, app, n)
			if err != nil {
				if ctx.Err() != nil {
					return fmt.Errorf("wait for %s to be healthy: %w", n, context.Cause(ctx))
				}
				return err
			}
			done, err := healthWaitDone(n, m)
			if err != nil {
				return err
			}
			if done {
				fmt.Fprintln(g.out, types.HealthHealthy)
				break
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("wait for %s to be healthy (now %s): %w", n, healthOf(m), context.Cause(ctx))
			case <-t.C:
			}
		}
	}
	return nil
}

// healthWaitDone says whether m (named n) is healthy, or why it never
// will be.
func healthWaitDone(n string, m *types.Machine) (bool, error) {
	switch {
	case m.State == types.StateCreated || m.State == types.StateStarting:
		return false, nil
	case m.State != types.StateStarted:
		return false, fmt.Errorf("%s is %s, not running: it cannot become healthy%s: %w", n, m.State, m.Health.LastCheck(), errdefs.ErrConflict)
	case !hasHealthcheck(m):
		return false, fmt.Errorf("%s has no health check: create it with --health-cmd or from an image with a HEALTHCHECK: %w", n, errdefs.ErrInvalidArgument)
	case m.Health == nil: // the checker is not up yet
		return false, nil
	case m.Health.Status == types.HealthHealthy:
		return true, nil
	case m.Health.Status == types.HealthUnhealthy:
		return false, fmt.Errorf("%s is unhealthy%s: %w", n, m.Health.LastCheck(), errdefs.ErrConflict)
	}
	return false, nil
}

// hasHealthcheck says whether m's config or image gives it a health check.
func hasHealthcheck(m *types.Machine) bool {
	if m.Health != nil {
		return true
	}
	cfg, img := m.Config.Healthcheck, m.ImageConfig.Healthcheck
	if cfg.Disabled() {
		return false
	}
	return (cfg != nil && len(cfg.Test) > 0) || (img != nil && len(img.Test) > 0 && !img.Disabled())
}
