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
				if err := remove(ctx, c, p.Project, m); err != nil {
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
	done := map[string]chan struct{}{}
	for name := range selected {
		done[name] = make(chan struct{})
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	for name := range selected {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := p.Services[name]
			err := waitDeps(ctx, c, p, s, done)
			if err == nil {
				err = converge(ctx, c, p, s, byService[name], o.ForceRecreate)
			}
			if err != nil {
				err = fmt.Errorf("service %s: %w", name, err)
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
				cancel(err)
				return
			}
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
// reached its depends_on condition.
func waitDeps(ctx context.Context, c Client, p *Plan, s *Service, done map[string]chan struct{}) error {
	for _, dep := range slices.Sorted(mapKeys(s.DependsOn)) {
		ch, ok := done[dep]
		if !ok {
			continue // not selected (--no-deps) or absent and optional
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
		switch cond := s.DependsOn[dep].Condition; cond {
		case "", ctypes.ServiceConditionStarted:
		case ctypes.ServiceConditionCompletedSuccessfully:
			if err := waitCompleted(ctx, c, p, p.Services[dep]); err != nil {
				return err
			}
		case ctypes.ServiceConditionHealthy:
			if err := waitHealthy(ctx, c, p, p.Services[dep], true); err != nil {
				return fmt.Errorf("dependency %s: %w", dep, err)
			}
		default:
			return fmt.Errorf("depends_on %s: unknown condition %q: %w", dep, cond, errdefs.ErrInvalidArgument)
		}
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
// recreated; replicas beyond the scale removed. Replicas start in parallel.
func converge(ctx context.Context, c Client, p *Plan, s *Service, have []*types.Machine, force bool) error {
	byNum := map[int]*types.Machine{}
	for _, m := range have {
		n := number(m)
		if n < 1 || n > s.Scale || byNum[n] != nil {
			if err := remove(ctx, c, p.Project, m); err != nil {
				return err
			}
			continue
		}
		byNum[n] = m
	}
	var wg sync.WaitGroup
	errs := make([]error, s.Scale+1)
	for n := 1; n <= s.Scale; n++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[n] = replica(ctx, c, p, s, n, byNum[n], force)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func replica(ctx context.Context, c Client, p *Plan, s *Service, n int, m *types.Machine, force bool) error {
	if m != nil && !force && m.Config.Metadata[LabelConfigHash] == s.Hash {
		if m.State == types.StateStarted || m.State == types.StateStarting {
			slog.Info("running", "machine", m.Name)
			return nil
		}
		if _, err := c.StartMachine(ctx, p.Project, m.ID); err != nil {
			return fmt.Errorf("start %s: %w", m.Name, err)
		}
		if err := waitBooted(ctx, c, p.Project, m.Name); err != nil {
			return err
		}
		slog.Info("started", "machine", m.Name)
		return nil
	}
	if m != nil {
		if err := remove(ctx, c, p.Project, m); err != nil {
			return err
		}
		slog.Info("recreating", "machine", m.Name)
	}
	if err := stage(s.files); err != nil {
		return err
	}
	req := p.Request(s, n)
	if _, err := c.CreateMachine(ctx, p.Project, req); err != nil {
		return fmt.Errorf("create %s: %w", req.Name, err)
	}
	if err := waitBooted(ctx, c, p.Project, req.Name); err != nil {
		return err
	}
	slog.Info("started", "machine", req.Name)
	return nil
}

// remove stops m as docker compose does (SIGTERM, a kill after the
// machine's stop timeout), so its guest flushes what it wrote to its
// volumes, then destroys it with its anonymous volumes.
func remove(ctx context.Context, c Client, app string, m *types.Machine) error {
	if m.State == types.StateStarted || m.State == types.StateStarting {
		if _, err := c.StopMachine(ctx, app, m.ID, types.StopRequest{}); err != nil && !errors.Is(err, errdefs.ErrNotFound) {
			slog.Warn("stop failed; killing", "machine", m.Name, "err", err)
		}
	}
	if err := c.DestroyMachineWithVolumes(ctx, app, m.ID, true, true); err != nil && !errors.Is(err, errdefs.ErrNotFound) {
		return fmt.Errorf("remove %s: %w", m.Name, err)
	}
	return nil
}
