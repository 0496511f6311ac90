package controlplane

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ferryvm/ferry/internal/api/types"
	"github.com/ferryvm/ferry/internal/errdefs"
	"github.com/ferryvm/ferry/internal/machine"
)

// PlacedKey is the metadata key that marks a host's machine as the
// control plane's: the agent converges those and leaves the host's own
// machines alone.
const PlacedKey = "ferry.controlplane"

// LocalMachines is the host's own machine manager (a *machine.Manager):
// the agent converges through it, so every transition goes through the
// host's durable state first, as one through the host's API does.
type LocalMachines interface {
	List(app string, all bool) []*types.Machine
	Create(ctx context.Context, app string, req types.CreateRequest) (*types.Machine, error)
	Stop(ctx context.Context, app, ref string, opt machine.StopOptions) (*types.Machine, error)
	Destroy(ctx context.Context, app, ref string, force bool) error
}

var _ LocalMachines = (*machine.Manager)(nil)

// CreateRequest is how a host creates the placed machine m.
func (m Machine) CreateRequest() types.CreateRequest {
	cfg := *m.Config
	md := make(map[string]string, len(cfg.Metadata)+1)
	for k, v := range cfg.Metadata {
		md[k] = v
	}
	md[PlacedKey] = "placed"
	cfg.Metadata = md
	return types.CreateRequest{ID: m.ID, Name: m.Name, Config: cfg, SkipLaunch: m.Desired != "started"}
}

// placed is the host's machines that the control plane placed, by ID.
func placed(lm LocalMachines) map[string]*types.Machine {
	out := map[string]*types.Machine{}
	for _, mc := range lm.List("", true) {
		if mc.Config.Metadata[PlacedKey] != "" && mc.State != types.StateDestroyed && mc.State != types.StateDestroying {
			out[mc.ID] = mc
		}
	}
	return out
}

// converge brings the host's placed machines to its desired set, under a
// live lease: a machine it runs that is no longer placed on it (moved
// while the host was away, or removed) is destroyed; one placed on it
// that it lacks is created (and started unless its desired state is
// stopped); one whose desired state is stopped is stopped. A machine's
// own exit is left to its restart policy, which the host applies.
//
// The host's machines are listed before the desired set is fetched, so a
// machine the control plane creates here meanwhile (its row committed
// before it is created) is never mistaken for one placed elsewhere.
func (a *Agent) converge(ctx context.Context) error {
	before := placed(a.Machines)
	var desired []Machine
	if err := a.get(ctx, "/v1/hosts/"+a.Host.ID+"/machines", &desired); err != nil {
		return err
	}
	if !a.leaseLive() {
		return fmt.Errorf("converge: the lease is not live: nothing is started: %w", errdefs.ErrUnavailable)
	}
	want := make(map[string]Machine, len(desired))
	for _, m := range desired {
		want[m.ID] = m
	}
	var errs []error
	for id, mc := range before {
		if _, ok := want[id]; ok {
			continue
		}
		a.Log.Info("machine no longer placed on this host; destroying this host's copy", "machine", id, "app", mc.App, "state", mc.State)
		if err := a.Machines.Destroy(ctx, mc.App, id, true); err != nil && !errors.Is(err, errdefs.ErrNotFound) {
			errs = append(errs, fmt.Errorf("destroy %s: %w", id, err))
		}
	}
	now := placed(a.Machines)
	for _, m := range desired {
		if m.Config == nil {
			continue // a placement record without a config: nothing to boot
		}
		mc, ok := now[m.ID]
		switch {
		case !ok && m.Desired != "destroyed":
			if !a.leaseLive() {
				return errors.Join(append(errs, fmt.Errorf("converge: the lease expired: %w", errdefs.ErrUnavailable))...)
			}
			a.Log.Info("creating placed machine", "machine", m.ID, "app", m.App, "name", m.Name, "generation", m.PlacedGeneration)
			if _, err := a.Machines.Create(ctx, m.App, m.CreateRequest()); err != nil && !errors.Is(err, errdefs.ErrAlreadyExists) {
				errs = append(errs, fmt.Errorf("create %s: %w", m.ID, err))
			}
		case ok && m.Desired == "stopped" && (mc.State == types.StateStarted || mc.State == types.StateStarting):
			if _, err := a.Machines.Stop(ctx, m.App, m.ID, machine.StopOptions{}); err != nil {
				errs = append(errs, fmt.Errorf("stop %s: %w", m.ID, err))
			}
		}
	}
	return errors.Join(errs...)
}

// convergeLoop converges each time kick fires (after every registration
// and renewal) until ctx ends, apart from the renewals so a slow boot
// never delays a lease.
func (a *Agent) convergeLoop(ctx context.Context, kick <-chan struct{}) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-kick:
		}
		cctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
		if err := a.converge(cctx); err != nil && ctx.Err() == nil {
			a.Log.Warn("converge machines to the control plane's desired set", "err", err)
		}
		cancel()
	}
}
