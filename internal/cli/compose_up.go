package cli

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ferryvm/ferry/internal/compose"
	"github.com/ferryvm/ferry/internal/errdefs"
)

func newComposeUpCmd(g *globals, f *composeFlags) *cobra.Command {
	var o compose.UpOptions
	var scale []string
	var detach bool
	var waitTimeout time.Duration
	cmd := &cobra.Command{
		Use:   "up [flags] [SERVICE...]",
		Short: "Create and start the project's machines (recreating services whose config changed)",
		RunE: func(cmd *cobra.Command, args []string) error {
			if !detach {
				return fmt.Errorf("compose up: attached mode is not available yet; use -d: %w", errdefs.ErrInvalidArgument)
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
			if waitTimeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeoutCause(ctx, waitTimeout, fmt.Errorf("--wait-timeout %s passed: %w", waitTimeout, errdefs.ErrTimeout))
				defer cancel()
			}
			return compose.Up(ctx, c, plan, o)
		},
	}
	fl := cmd.Flags()
	fl.BoolVarP(&detach, "detach", "d", false, "start in the background")
	fl.StringArrayVar(&scale, "scale", nil, "SERVICE=N replicas (overrides deploy.replicas)")
	fl.BoolVar(&o.NoDeps, "no-deps", false, "do not start the services the named ones depend on")
	fl.BoolVar(&o.ForceRecreate, "force-recreate", false, "recreate machines even if their config is unchanged")
	fl.BoolVar(&o.Wait, "wait", false, "wait for every replica to be started and healthy (those with a healthcheck)")
	fl.DurationVar(&waitTimeout, "wait-timeout", 0, "give up on up after this long (0: no limit)")
	fl.BoolVar(&o.RemoveOrphans, "remove-orphans", false, "remove machines of services not in the file")
	return cmd
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
