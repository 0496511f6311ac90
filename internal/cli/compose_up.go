package cli

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"time"

	ctypes "github.com/compose-spec/compose-go/v2/types"
	"github.com/spf13/cobra"

	"github.com/ferryvm/ferry/internal/api"
	"github.com/ferryvm/ferry/internal/api/types"
	"github.com/ferryvm/ferry/internal/compose"
	"github.com/ferryvm/ferry/internal/errdefs"
)

func newComposeUpCmd(g *globals, f *composeFlags) *cobra.Command {
	var o compose.UpOptions
	var scale []string
	var detach, build, noBuild, noColor, noPrefix bool
	var waitTimeout time.Duration
	cmd := &cobra.Command{
		Use:   "up [flags] [SERVICE...]",
		Short: "Create and start the project's machines (recreating services whose config changed)",
		Long: `Create and start the project's machines. Without -d, up then shows their
output, each line prefixed with its service and replica, until they all
exit; Ctrl-C stops them (a second Ctrl-C kills them).`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if build && noBuild {
				return fmt.Errorf("--build and --no-build: choose one: %w", errdefs.ErrInvalidArgument)
			}
			sc, err := parseScale(scale)
			if err != nil {
				return err
			}
			proj, err := f.load(cmd.Context())
			if err != nil {
				return err
			}
			plan, err := compose.NewPlan(proj, sc)
			if err != nil {
				return err
			}
			c, err := g.apiClient()
			if err != nil {
				return err
			}
			o.Services = args
			ctx := cmd.Context()
			if !noBuild {
				if err := composeBuild(ctx, g, c, plan, composeBuildOptions{services: args, onlyMissing: !build, deps: !o.NoDeps}); err != nil {
					return err
				}
			}
			if err := pullAlways(ctx, g, c, plan, args); err != nil {
				return err
			}
			if waitTimeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeoutCause(ctx, waitTimeout, fmt.Errorf("--wait-timeout %s passed: %w", waitTimeout, errdefs.ErrTimeout))
				defer cancel()
			}
			if detach || o.Wait {
				return compose.Up(ctx, c, plan, o)
			}
			return upAttached(ctx, g, c, plan, o, !noColor && isTerminal(g.out), !noPrefix)
		},
	}
	fl := cmd.Flags()
	fl.BoolVarP(&detach, "detach", "d", false, "start in the background")
	fl.BoolVar(&build, "build", false, "build the services' images first (default: only those not built yet)")
	fl.BoolVar(&noBuild, "no-build", false, "do not build images, even missing ones")
	fl.StringArrayVar(&scale, "scale", nil, "SERVICE=N replicas (overrides deploy.replicas)")
	fl.BoolVar(&o.NoDeps, "no-deps", false, "do not start the services the named ones depend on")
	fl.BoolVar(&o.ForceRecreate, "force-recreate", false, "recreate machines even if their config is unchanged")
	fl.BoolVar(&o.Wait, "wait", false, "wait for every replica to be started and healthy (those with a healthcheck); implies -d")
	fl.DurationVar(&waitTimeout, "wait-timeout", 0, "give up on up after this long (0: no limit)")
	fl.BoolVar(&o.RemoveOrphans, "remove-orphans", false, "remove machines of services not in the file")
	fl.BoolVar(&noColor, "no-color", false, "attached: plain prefixes")
	fl.BoolVar(&noPrefix, "no-log-prefix", false, "attached: no prefixes")
	return cmd
}

// upAttached is up without -d: bring the project up, then show the output
// of the services' machines until every one has exited. Ctrl-C (ctx done)
// stops the project's machines, as docker compose does; a second one
// kills them.
func upAttached(ctx context.Context, g *globals, c *api.Client, plan *compose.Plan, o compose.UpOptions, colour, prefix bool) error {
	upErr := compose.Up(ctx, c, plan, o)
	if ctx.Err() != nil {
		return stopAttached(g, c, plan, o)
	}
	if upErr != nil {
		return upErr
	}
	ms, err := attachedMachines(context.WithoutCancel(ctx), c, plan, o.Services)
	if err != nil {
		return err
	}
	names := make([]string, len(ms))
	for i, m := range ms {
		names[i] = logName(plan.Project, m)
	}
	fmt.Fprintf(g.out, "Attaching to %s\n", strings.Join(names, ", "))
	lp := newLogPrinter(g.out, g.err, plan.Project, ms, colour, prefix)
	_ = forProject(ms, func(m *types.Machine) error {
		if err := lp.stream(ctx, c, plan.Project, m, api.LogsOptions{Follow: true}); err != nil && ctx.Err() == nil {
			fmt.Fprintf(g.err, "ferry: logs of %s: %v\n", m.Name, err)
		}
		if ctx.Err() != nil {
			return nil
		}
		w, err := c.WaitMachine(ctx, plan.Project, m.ID, types.StateStopped, 0)
		if err == nil && w.LastExit != nil {
			lp.status(fmt.Sprintf("%s exited with code %d", logName(plan.Project, m), w.LastExit.ExitCode))
		}
		return nil
	})
	if ctx.Err() != nil {
		return stopAttached(g, c, plan, o)
	}
	return nil
}

// attachedMachines are the machines an attached up shows: the named
// services' (all of the project's when none is named), one-offs aside.
func attachedMachines(ctx context.Context, c *api.Client, plan *compose.Plan, services []string) ([]*types.Machine, error) {
	ms, err := compose.Machines(ctx, c, plan.Project)
	if err != nil {
		return nil, err
	}
	ms = slices.DeleteFunc(ms, func(m *types.Machine) bool {
		svc := m.Config.Metadata[compose.LabelService]
		return m.Config.Metadata[compose.LabelOneOff] == "True" || (len(services) > 0 && !slices.Contains(services, svc))
	})
	slices.SortFunc(ms, func(a, b *types.Machine) int { return strings.Compare(a.Name, b.Name) })
	return ms, nil
}

// stopAttached stops the machines of the services up brought up (those
// named and what they depend on) after a Ctrl-C; a second Ctrl-C kills
// them. It returns exit status 130, as docker compose does.
func stopAttached(g *globals, c *api.Client, plan *compose.Plan, o compose.UpOptions) error {
	fmt.Fprintln(g.err, "Gracefully stopping... (press Ctrl+C again to force)")
	ctx := context.Background()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt)
	defer signal.Stop(sigs)
	services, err := plan.Selected(o.Services, o.NoDeps)
	if err != nil {
		return err
	}
	ms, err := attachedMachines(ctx, c, plan, services)
	if err != nil {
		return err
	}
	req := types.StopRequest{}
	go func() {
		if _, ok := <-sigs; ok {
			for _, m := range ms {
				_ = c.SignalMachine(ctx, plan.Project, m.ID, "KILL")
			}
		}
	}()
	err = forProject(ms, func(m *types.Machine) error {
		if m.State != types.StateStarted && m.State != types.StateStarting {
			return nil
		}
		if _, err := c.StopMachine(ctx, plan.Project, m.ID, req); err != nil {
			return err
		}
		fmt.Fprintf(g.err, "Container %s Stopped\n", m.Name)
		return nil
	})
	if err != nil {
		return err
	}
	return exitError{code: 130}
}

// pullAlways pulls the images of the services whose pull_policy is
// always (or refresh) before up creates their machines; the others are
// pulled by the daemon when missing.
func pullAlways(ctx context.Context, g *globals, c *api.Client, plan *compose.Plan, services []string) error {
	refs, err := plan.Images(services, func(s *compose.Service) bool {
		return s.Build == nil && (s.Pull == ctypes.PullPolicyAlways || s.Pull == ctypes.PullPolicyRefresh)
	})
	if err != nil {
		return err
	}
	for _, ref := range refs {
		req := api.PullRequest{Ref: ref}
		if req.Auth, err = callerAuth(ref); err != nil {
			return err
		}
		if _, err := c.Pull(ctx, req, nil); err != nil {
			return fmt.Errorf("pull %s (pull_policy: always): %w", ref, err)
		}
		fmt.Fprintf(g.err, "%s Pulled\n", ref)
	}
	return nil
}

func parseScale(in []string) (map[string]int, error) {
	out := map[string]int{}
	for _, s := range in {
		name, v, ok := strings.Cut(s, "=")
		n, err := strconv.Atoi(v)
		if !ok || err != nil || n < 0 {
			return nil, fmt.Errorf("--scale %q: want SERVICE=N with N ≥ 0: %w", s, errdefs.ErrInvalidArgument)
		}
		out[name] = n
	}
	return out, nil
}
