package compose

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/ferryvm/ferry/internal/api"
	"github.com/ferryvm/ferry/internal/api/types"
	"github.com/ferryvm/ferry/internal/guest"
	"github.com/ferryvm/ferry/internal/network"
)

// Client is the part of ferry's API client compose drives (api.Client).
type Client interface {
	CreateMachine(ctx context.Context, app string, req types.CreateRequest) (*types.Machine, error)
	ListMachines(ctx context.Context, app string, all bool) ([]*types.Machine, error)
	GetMachine(ctx context.Context, app, id string) (*types.Machine, error)
	StartMachine(ctx context.Context, app, id string) (*types.Machine, error)
	StopMachine(ctx context.Context, app, id string, req types.StopRequest) (*types.Machine, error)
	WaitMachine(ctx context.Context, app, id string, state types.State, timeout time.Duration) (*types.Machine, error)
	DestroyMachineWithVolumes(ctx context.Context, app, id string, force, anonymous bool) error
	CreateNetwork(ctx context.Context, req network.CreateRequest) (*network.Network, error)
	ListNetworks(ctx context.Context, o network.ListOptions) ([]*network.Network, error)
	RemoveNetwork(ctx context.Context, ref string) error
	RemoveVolume(ctx context.Context, app, id string) error
	ExecMachine(ctx context.Context, app, id string, req types.ExecRequest, stdio guest.ExecIO) (int, error)
}

var _ Client = (*api.Client)(nil)

// Machines are the project's machines (one-off ones included), found by
// their labels in the project's app.
func Machines(ctx context.Context, c Client, project string) ([]*types.Machine, error) {
	all, err := c.ListMachines(ctx, project, true)
	if err != nil {
		return nil, fmt.Errorf("list machines of project %s: %w", project, err)
	}
	var out []*types.Machine
	for _, m := range all {
		if m.Config.Metadata[LabelProject] == project {
			out = append(out, m)
		}
	}
	return out, nil
}

// number is m's replica number (0: none).
func number(m *types.Machine) int {
	n, _ := strconv.Atoi(m.Config.Metadata[LabelNumber])
	return n
}

// ensureNetworks creates the plan's networks that do not exist yet.
func ensureNetworks(ctx context.Context, c Client, p *Plan) error {
	have, err := c.ListNetworks(ctx, network.ListOptions{Labels: map[string]string{LabelProject: p.Project}})
	if err != nil {
		return fmt.Errorf("list networks of project %s: %w", p.Project, err)
	}
	exists := map[string]bool{}
	for _, n := range have {
		exists[n.Name] = true
	}
	for _, req := range p.Networks {
		if exists[req.Name] {
			continue
		}
		if _, err := c.CreateNetwork(ctx, req); err != nil {
			return fmt.Errorf("create network %s: %w", req.Name, err)
		}
		slog.Info("network created", "network", req.Name)
	}
	return nil
}
