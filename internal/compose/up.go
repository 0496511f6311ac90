package compose

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"

	ctypes "github.com/compose-spec/compose-go/v2/types"

	"github.com/ferryvm/ferry/internal/api/types"
	"github.com/ferryvm/ferry/internal/errdefs"
)

// UpOptions are compose up's flags.
type UpOptions struct {
	Services      []string // only these (and, unless NoDeps, what they depend on)
	NoDeps        bool
	ForceRecreate bool
	RemoveOrphans bool
	// Wait waits, after everything is up, for every replica to be started
	// and, when it has a health check, healthy (up --wait).
	Wait bool
}

// Up converges the daemon to p: networks first, then every service at once,
// each waiting only for the services its depends_on names to reach their
// condition. A service whose replicas carry p's config hash is left
// running (started if stopped); one whose hash changed is recreated.
// The first failure cancels what has not started and is returned.
func Up(ctx context.Context, c Client, p *Plan, o UpOptions) error {
	selected, err := p.selection(o.Services, o.NoDeps)
	if err != nil {
		return err
	}
	if err := ensureNetworks(ctx, c, p); err != nil {
		return err
	}
	existing, err := Machines(ctx, c, p.Project)
	if err != nil {
		return err
	}
	byService := map[string][]*types.Machine{}
	for _, m := range existing {
		svc := m.Config.Metadata[LabelService]
		if m.Config.Metadata[LabelOneOff] == "True" {
			continue
		}
		if _, ok := p.Services[svc]; !ok {
			if o.RemoveOrphans {
				if err := remove(ctx, c, p.Project, m, types.StopRequest{}); err != nil {
					return err
				}
				continue
			}
			slog.Warn("orphan machine: its service is not in the project (--remove-orphans removes it)", "machine", m.Name, "service", svc)
			continue
		}
		byService[svc] = append(byService[svc], m)
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	done := map[string]chan struct{}{}   // closed once the service is up
	failed := map[string]chan struct{}{} // closed when it failed
	for name := range selected {
		done[name], failed[name] = make(chan struct{}), make(chan struct{})
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	recreated := map[string]bool{}
	for name := range selected {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := p.Services[name]
			restart, err := waitDeps(ctx, c, p, s, done, failed, func(dep string) bool {
				mu.Lock()
				defer mu.Unlock()
				return recreated[dep]
			})
			var changed bool
			if err == nil {
				changed, err = converge(ctx, c, p, s, byService[name], o.ForceRecreate)
			}
			if err == nil && restart && !changed {
				err = restartService(ctx, c, p, s)
			}
			if err != nil {
				err = fmt.Errorf("service %s: %w", name, err)
				close(failed[name])
				if p.optionalFor(name, selected) {
					slog.Warn("service failed; what depends on it starts anyway (depends_on required: false)", "service", name, "err", err)
					return
				}
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
				cancel(err)
				return
			}
			mu.Lock()
			recreated[name] = changed
			mu.Unlock()
			close(done[name])
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		return errs[0]
	}
	if o.Wait {
		return waitAll(ctx, c, p, selected)
	}
	return nil
}

// waitAll waits for the selected services to be healthy, all at once.
func waitAll(ctx context.Context, c Client, p *Plan, selected map[string]bool) error {
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	for _, name := range slices.Sorted(mapKeys(selected)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := waitHealthy(ctx, c, p, p.Services[name], false); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("service %s: %w", name, err))
				mu.Unlock()
				return
			}
			slog.Info("healthy", "service", name)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// selection is the set of services to bring up.
func (p *Plan) selection(names []string, noDeps bool) (map[string]bool, error) {
	sel := map[string]bool{}
	if len(names) == 0 {
		for n := range p.Services {
			sel[n] = true
		}
		return sel, nil
	}
	var add func(string) error
	add = func(n string) error {
		s, ok := p.Services[n]
		if !ok {
			return fmt.Errorf("no such service: %s: %w", n, errdefs.ErrNotFound)
		}
		if sel[n] {
			return nil
		}
		sel[n] = true
		if noDeps {
			return nil
		}
		for d := range s.DependsOn {
			if _, ok := p.Services[d]; ok {
				if err := add(d); err != nil {
					return err
				}
			}
		}
		return nil
	}
	for _, n := range names {
		if err := add(n); err != nil {
			return nil, err
		}
	}
	return sel, nil
}

// waitDeps waits until every dependency of s that is being brought up has
// reached its depends_on condition. A dependency that failed fails s
// unless it is not required (then s starts anyway). restart reports that
// a dependency with depends_on restart: true was (re)created, so s must
// restart if it is not recreated itself.
func waitDeps(ctx context.Context, c Client, p *Plan, s *Service, done, failed map[string]chan struct{}, recreated func(string) bool) (restart bool, err error) {
	for _, dep := range slices.Sorted(mapKeys(s.DependsOn)) {
		ch, ok := done[dep]
		if !ok {
			continue // not selected (--no-deps) or absent and optional
		}
		d := s.DependsOn[dep]
		select {
		case <-ch:
		case <-failed[dep]:
			if d.Required {
				return false, fmt.Errorf("dependency %s failed to start: %w", dep, errdefs.ErrConflict)
			}
			slog.Warn("dependency failed; starting anyway (depends_on required: false)", "service", s.Name, "dependency", dep)
			continue
		case <-ctx.Done():
			return false, context.Cause(ctx)
		}
		if err := waitCondition(ctx, c, p, dep, d.Condition); err != nil {
			if !d.Required {
				slog.Warn("dependency did not reach its condition; starting anyway (depends_on required: false)", "service", s.Name, "dependency", dep, "err", err)
				continue
			}
			return false, err
		}
		restart = restart || (d.Restart && recreated(dep))
	}
	return restart, nil
}

// waitCondition waits for dep to reach a depends_on condition.
func waitCondition(ctx context.Context, c Client, p *Plan, dep, cond string) error {
	switch cond {
	case "", ctypes.ServiceConditionStarted:
		return nil
	case ctypes.ServiceConditionCompletedSuccessfully:
		return waitCompleted(ctx, c, p, p.Services[dep])
	case ctypes.ServiceConditionHealthy:
		if err := waitHealthy(ctx, c, p, p.Services[dep], true); err != nil {
			return fmt.Errorf("dependency %s: %w", dep, err)
		}
		return nil
	default:
		return fmt.Errorf("depends_on %s: unknown condition %q: %w", dep, cond, errdefs.ErrInvalidArgument)
	}
}

// optionalFor reports whether a selected service depends on name with
// required: false, so that name failing is only a warning.
func (p *Plan) optionalFor(name string, selected map[string]bool) bool {
	for n := range selected {
		if d, ok := p.Services[n].DependsOn[name]; ok && !d.Required {
			return true
		}
	}
	return false
}

// restartService restarts s's replicas (stop, start, wait for boot): a
// dependency with depends_on restart: true was recreated.
func restartService(ctx context.Context, c Client, p *Plan, s *Service) error {
	for n := 1; n <= s.Scale; n++ {
		name := p.MachineName(s, n)
		if _, err := c.StopMachine(ctx, p.Project, name, s.Stop); err != nil {
			return fmt.Errorf("restart %s: %w", name, err)
		}
		if _, err := c.StartMachine(ctx, p.Project, name); err != nil {
			return fmt.Errorf("restart %s: %w", name, err)
		}
		if err := waitBooted(ctx, c, p.Project, name); err != nil {
			return err
		}
		slog.Info("restarted", "machine", name, "reason", "a dependency was recreated")
	}
	return nil
}

// waitCompleted waits for every replica of dep to exit, with status 0.
func waitCompleted(ctx context.Context, c Client, p *Plan, dep *Service) error {
	for n := 1; n <= dep.Scale; n++ {
		name := p.MachineName(dep, n)
		m, err := c.WaitMachine(ctx, p.Project, name, types.StateStopped, 0)
		if err != nil {
			return fmt.Errorf("wait for %s to complete: %w", name, err)
		}
		if m.LastExit == nil || m.LastExit.ExitCode != 0 {
			code := -1
			if m.LastExit != nil {
				code = m.LastExit.ExitCode
			}
			return fmt.Errorf("dependency %s did not complete successfully (exit %d): %w", name, code, errdefs.ErrConflict)
		}
	}
	return nil
}

// converge brings s's replicas to its plan: same hash, started; otherwise
// recreated; replicas beyond the scale removed. Replicas start in
// parallel. changed reports that a replica was created or recreated.
func converge(ctx context.Context, c Client, p *Plan, s *Service, have []*types.Machine, force bool) (changed bool, err error) {
	byNum := map[int]*types.Machine{}
	for _, m := range have {
		n := number(m)
		if n < 1 || n > s.Scale || byNum[n] != nil {
			if err := remove(ctx, c, p.Project, m, s.Stop); err != nil {
				return false, err
			}
			continue
		}
		byNum[n] = m
	}
	var wg sync.WaitGroup
	errs := make([]error, s.Scale+1)
	created := make([]bool, s.Scale+1)
	for n := 1; n <= s.Scale; n++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			created[n], errs[n] = replica(ctx, c, p, s, n, byNum[n], force)
		}()
	}
	wg.Wait()
	return slices.Contains(created, true), errors.Join(errs...)
}

// replica converges replica n of s; created reports a new machine.
func replica(ctx context.Context, c Client, p *Plan, s *Service, n int, m *types.Machine, force bool) (created bool, err error) {
	if m != nil && !force && m.Config.Metadata[LabelConfigHash] == s.Hash {
		if m.State == types.StateStarted || m.State == types.StateStarting {
			slog.Info("running", "machine", m.Name)
			return false, nil
		}
		if _, err := c.StartMachine(ctx, p.Project, m.ID); err != nil {
			return false, fmt.Errorf("start %s: %w", m.Name, err)
		}
		if err := waitBooted(ctx, c, p.Project, m.Name); err != nil {
			return false, err
		}
		slog.Info("started", "machine", m.Name)
		return false, nil
	}
	if m != nil {
		if err := remove(ctx, c, p.Project, m, s.Stop); err != nil {
			return false, err
		}
		slog.Info("recreating", "machine", m.Name)
	}
	if err := stage(s.files); err != nil {
		return false, err
	}
	req := p.Request(s, n)
	if _, err := c.CreateMachine(ctx, p.Project, req); err != nil {
		return false, fmt.Errorf("create %s: %w", req.Name, err)
	}
	if err := waitBooted(ctx, c, p.Project, req.Name); err != nil {
		return true, err
	}
	slog.Info("started", "machine", req.Name)
	return true, nil
}

// remove stops m as docker compose does (the service's stop_signal,
// default SIGTERM, then a kill after its stop_grace_period, default the
// machine's stop timeout), so its guest flushes what it wrote to its
// volumes, then destroys it with its anonymous volumes.
func remove(ctx context.Context, c Client, app string, m *types.Machine, stop types.StopRequest) error {
	if m.State == types.StateStarted || m.State == types.StateStarting {
		if _, err := c.StopMachine(ctx, app, m.ID, stop); err != nil && !errors.Is(err, errdefs.ErrNotFound) {
			slog.Warn("stop failed; killing", "machine", m.Name, "err", err)
		}
	}
	if err := c.DestroyMachineWithVolumes(ctx, app, m.ID, true, true); err != nil && !errors.Is(err, errdefs.ErrNotFound) {
		return fmt.Errorf("remove %s: %w", m.Name, err)
	}
	return nil
}

// Selected are the services up brings up for names (all when none is
// named): with their dependencies unless noDeps, sorted.
func (p *Plan) Selected(names []string, noDeps bool) ([]string, error) {
	sel, err := p.selection(names, noDeps)
	if err != nil {
		return nil, err
	}
	return slices.Sorted(mapKeys(sel)), nil
}
