package compose

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"

	"github.com/ferryvm/ferry/internal/api/types"
	"github.com/ferryvm/ferry/internal/errdefs"
)

// RunOptions are compose run's: a one-off machine of a service.
type RunOptions struct {
	Service    string
	Cmd        []string // nil: the service's command
	Entrypoint []string // nil: the service's
	Env        map[string]string
	User       string
	WorkingDir string
	Name       string // "": PROJECT-SERVICE-run-RANDOM
	TTY        bool
	// ServicePorts publishes the service's ports; without it a one-off
	// publishes none (they would clash with the service's), as in docker
	// compose.
	ServicePorts bool
	NoDeps       bool // do not bring up what the service depends on
}

// PrepareRun brings up what o.Service depends on (unless NoDeps) and the
// project's networks, stages the service's secrets and returns the create
// request of the one-off machine, labelled oneoff so up leaves it alone
// and down removes it.
func PrepareRun(ctx context.Context, c Client, p *Plan, o RunOptions) (types.CreateRequest, error) {
	s, ok := p.Services[o.Service]
	if !ok {
		return types.CreateRequest{}, fmt.Errorf("no such service: %s: %w", o.Service, errdefs.ErrNotFound)
	}
	deps := slices.DeleteFunc(slices.Sorted(mapKeys(s.DependsOn)), func(d string) bool { return p.Services[d] == nil })
	if len(deps) > 0 && !o.NoDeps {
		if err := Up(ctx, c, p, UpOptions{Services: deps}); err != nil {
			return types.CreateRequest{}, fmt.Errorf("dependencies of %s: %w", o.Service, err)
		}
	} else if err := ensureNetworks(ctx, c, p); err != nil {
		return types.CreateRequest{}, err
	}
	if err := stage(s.files); err != nil {
		return types.CreateRequest{}, err
	}
	req := p.Request(s, 1)
	cfg := &req.Config
	delete(cfg.Metadata, LabelNumber)
	cfg.Metadata[LabelOneOff] = "True"
	cfg.Init.TTY = o.TTY
	if o.Entrypoint != nil {
		cfg.Init.Entrypoint, cfg.Init.Cmd = o.Entrypoint, []string{}
	}
	if o.Cmd != nil {
		cfg.Init.Cmd = o.Cmd
	}
	if o.User != "" {
		cfg.Init.User = o.User
	}
	if o.WorkingDir != "" {
		cfg.Init.WorkingDir = o.WorkingDir
	}
	if len(o.Env) > 0 {
		cfg.Env = maps.Clone(cfg.Env)
		if cfg.Env == nil {
			cfg.Env = map[string]string{}
		}
		maps.Copy(cfg.Env, o.Env)
	}
	if !o.ServicePorts {
		cfg.Services = nil
	}
	cfg.Restart = types.Restart{}
	req.Name = o.Name
	if req.Name == "" {
		b := make([]byte, 6)
		_, _ = rand.Read(b)
		req.Name = fmt.Sprintf("%s-%s-run-%s", p.Project, s.Name, hex.EncodeToString(b))
	}
	return req, nil
}
