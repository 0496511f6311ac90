package cli

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/ferryvm/ferry/internal/api"
	"github.com/ferryvm/ferry/internal/compose"
)

func newComposePushCmd(g *globals, f *composeFlags) *cobra.Command {
	var quiet, ignoreFailures bool
	cmd := &cobra.Command{
		Use:   "push [flags] [SERVICE...]",
		Short: "Push the images of the services that build one",
		RunE: func(cmd *cobra.Command, args []string) error {
			plan, c, err := f.plan(cmd.Context(), g)
			if err != nil {
				return err
			}
			refs, err := plan.Images(args, func(s *compose.Service) bool { return s.Build != nil })
			if err != nil {
				return err
			}
			var errs []error
			for _, ref := range refs {
				req := api.PushRequest{Ref: ref}
				if req.Auth, err = callerAuth(ref); err == nil {
					_, err = c.Push(cmd.Context(), req, nil)
				}
				if err != nil {
					errs = append(errs, fmt.Errorf("push %s: %w", ref, err))
					continue
				}
				if !quiet {
					fmt.Fprintf(g.err, "%s Pushed\n", ref)
				}
			}
			if ignoreFailures {
				for _, err := range errs {
					fmt.Fprintln(g.err, "ferry: warning:", err)
				}
				return nil
			}
			return errors.Join(errs...)
		},
	}
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "no progress")
	cmd.Flags().BoolVar(&ignoreFailures, "ignore-push-failures", false, "push what can be pushed, warn about the rest")
	return cmd
}
