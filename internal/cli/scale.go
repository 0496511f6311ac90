package cli

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"sync"

	"github.com/spf13/cobra"

	"github.com/ferryvm/ferry/internal/api/types"
	"github.com/ferryvm/ferry/internal/errdefs"
)

func newScaleCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "scale",
		Short: "Scale an app's machines",
	}
	var app string
	var parallel int
	count := &cobra.Command{
		Use:   "count N --app APP IMAGE",
		Short: "Bring APP to N machines of IMAGE (creating or destroying; all share one base rootfs)",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			n, err := strconv.Atoi(args[0])
			if err != nil || n < 0 {
				return fmt.Errorf("count %q: want a number >= 0: %w", args[0], errdefs.ErrInvalidArgument)
			}
			img := args[1]
			c, err := g.apiClient()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			list, err := c.ListMachines(ctx, app, true)
			if err != nil {
				return err
			}
			var have []*types.Machine
			for _, m := range list {
				if m.Config.Image == img {
					have = append(have, m)
				}
			}
			var mu sync.Mutex
			var errs []error
			sem := make(chan struct{}, max(parallel, 1))
			var wg sync.WaitGroup
			do := func(f func() error) {
				wg.Add(1)
				sem <- struct{}{}
				go func() {
					defer wg.Done()
					defer func() { <-sem }()
					if err := f(); err != nil {
						mu.Lock()
						errs = append(errs, err)
						mu.Unlock()
					}
				}()
			}
			switch {
			case len(have) < n:
				fmt.Fprintf(g.out, "Scaling %s from %d to %d machines of %s\n", app, len(have), n, img)
				for range n - len(have) {
					do(func() error {
						m, err := c.CreateMachine(ctx, app, types.CreateRequest{Config: types.Config{Image: img, Restart: types.Restart{Policy: types.RestartAlways}}})
						if err == nil {
							fmt.Fprintln(g.out, "created", m.ID, m.Name)
						}
						return err
					})
				}
			case len(have) > n:
				fmt.Fprintf(g.out, "Scaling %s from %d to %d machines of %s\n", app, len(have), n, img)
				// Destroy stopped ones first, then the newest.
				sort.SliceStable(have, func(i, j int) bool {
					si, sj := have[i].State == types.StateStarted, have[j].State == types.StateStarted
					if si != sj {
						return !si
					}
					return have[i].CreatedAt.After(have[j].CreatedAt)
				})
				for _, m := range have[:len(have)-n] {
					do(func() error {
						err := c.DestroyMachine(context.WithoutCancel(ctx), app, m.ID, true)
						if err == nil {
							fmt.Fprintln(g.out, "destroyed", m.ID, m.Name)
						}
						return err
					})
				}
			default:
				fmt.Fprintf(g.out, "%s already has %d machines of %s\n", app, n, img)
			}
			wg.Wait()
			if len(errs) > 0 {
				return fmt.Errorf("scale: %d of the changes failed, first: %w", len(errs), errs[0])
			}
			return nil
		},
	}
	count.Flags().StringVar(&app, "app", "default", "app to scale")
	count.Flags().IntVar(&parallel, "parallel", 4, "creates/destroys at a time")
	cmd.AddCommand(count)
	return cmd
}
