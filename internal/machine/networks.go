package machine

import (
	"context"
	"fmt"
	"slices"

	"github.com/ferryvm/ferry/internal/api/types"
	"github.com/ferryvm/ferry/internal/errdefs"
	"github.com/ferryvm/ferry/internal/network"
)

// Connect puts a created or stopped machine on one more network (Docker's
// network connect); it takes effect at its next start. A running machine is
// refused: a micro-VM's NICs are fixed at boot.
func (m *Manager) Connect(ctx context.Context, app, ref string, ep types.EndpointRequest) (*types.Machine, error) {
	mc, err := m.networkEditable(app, ref, "connect to "+ep.Network)
	if err != nil {
		return nil, err
	}
	cfg := cloneConfig(mc.Config)
	if len(cfg.Networks) == 0 { // on its app's default network until now: stay there
		cfg.Networks = []types.EndpointRequest{{Network: network.AppNetworkName(mc.App)}}
	}
	if slices.ContainsFunc(cfg.Networks, func(e types.EndpointRequest) bool { return e.Network == ep.Network }) {
		return nil, fmt.Errorf("machine %s is already on network %s: %w", mc.Name, ep.Network, errdefs.ErrAlreadyExists)
	}
	cfg.Networks = append(cfg.Networks, ep)
	return m.Update(ctx, app, mc.ID, cfg)
}

// Disconnect takes a created or stopped machine off a network (not its
// last one).
func (m *Manager) Disconnect(ctx context.Context, app, ref, net string) (*types.Machine, error) {
	mc, err := m.networkEditable(app, ref, "disconnect from "+net)
	if err != nil {
		return nil, err
	}
	cfg := cloneConfig(mc.Config)
	if len(cfg.Networks) == 0 {
		cfg.Networks = []types.EndpointRequest{{Network: network.AppNetworkName(mc.App)}}
	}
	i := slices.IndexFunc(cfg.Networks, func(e types.EndpointRequest) bool { return e.Network == net })
	switch {
	case i < 0:
		return nil, fmt.Errorf("machine %s is not on network %s: %w", mc.Name, net, errdefs.ErrNotFound)
	case len(cfg.Networks) == 1:
		return nil, fmt.Errorf("network %s is machine %s's only network; connect it to another first: %w", net, mc.Name, errdefs.ErrConflict)
	}
	cfg.Networks = slices.Delete(cfg.Networks, i, i+1)
	return m.Update(ctx, app, mc.ID, cfg)
}

func (m *Manager) networkEditable(app, ref, what string) (*types.Machine, error) {
	mc, err := m.Get(app, ref)
	if err != nil {
		return nil, err
	}
	switch mc.State {
	case types.StateCreated, types.StateStopped, types.StateFailed:
		return mc, nil
	}
	return nil, fmt.Errorf("machine %s is %s and a micro-VM's NICs are fixed at boot: stop it (ferry stop %s), %s, then start it: %w",
		mc.Name, mc.State, mc.Name, what, errdefs.ErrConflict)
}

// NetworkUsers returns the machines (any state) whose configuration puts
// them on the network called name (explicitly, or as their app's default).
func (m *Manager) NetworkUsers(ctx context.Context, id, name string) ([]string, error) {
	var out []string
	for _, mc := range m.List("", true) {
		nets := mc.Config.Networks
		if len(nets) == 0 {
			nets = []types.EndpointRequest{{Network: network.AppNetworkName(mc.App)}}
		}
		if slices.ContainsFunc(nets, func(e types.EndpointRequest) bool { return e.Network == name || e.Network == id }) {
			out = append(out, mc.Name)
		}
	}
	return out, nil
}
