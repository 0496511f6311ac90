package cli

import (
	"errors"
	"fmt"
	"sync"

	"github.com/spf13/cobra"

	"github.com/ferryvm/ferry/internal/api"
	"github.com/ferryvm/ferry/internal/compose"
)

func newComposePullCmd(g *globals, f *composeFlags) *cobra.Command {
	var quiet, ignoreFailures, ignoreBuildable bool
	cmd := &cobra.Command{
		Use:   "pull [flags] [SERVICE...]",
		Short: "Pull the services' images (all at once)",
		RunE: func(cmd *cobra.Command, args []string) error {
			plan, c, err := f.plan(cmd.Context(), g)
			if err != nil {
				return err
			}
			refs, err := plan.Images(args, func(s *compose.Service) bool {
				// As docker compose: a service that builds its image is
				// pulled only when the image may exist remotely.
				return s.Build == nil || !ignoreBuildable
			})
			if err != nil {
				return err
			}
			var mu sync.Mutex
			var errs []error
			var wg sync.WaitGroup
			for _, ref := range refs {
				wg.Add(1)
				go func() {
					defer wg.Done()
					req := api.PullRequest{Ref: ref}
					var err error
					if req.Auth, err = callerAuth(ref); err == nil {
						_, err = c.Pull(cmd.Context(), req, nil)
					}
					mu.Lock()
					defer mu.Unlock()
					if err != nil {
						errs = append(errs, err) // the daemon's error names the pull
						if !quiet {
							fmt.Fprintf(g.err, "%s Error\n", ref)
						}
						return
					}
					if !quiet {
						fmt.Fprintf(g.err, "%s Pulled\n", ref)
					}
				}()
			}
			wg.Wait()
			if ignoreFailures {
				for _, err := range errs {
					fmt.Fprintln(g.err, "ferry: warning:", err)
				}
				return nil
			}
			return errors.Join(errs...)
		},
	}
	fl := cmd.Flags()
	fl.BoolVarP(&quiet, "quiet", "q", false, "no progress")
	fl.BoolVar(&ignoreFailures, "ignore-pull-failures", false, "pull what can be pulled, warn about the rest")
	fl.BoolVar(&ignoreBuildable, "ignore-buildable", false, "skip services that build their image")
	return cmd
}
