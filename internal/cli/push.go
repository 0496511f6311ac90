package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/ferryvm/ferry/internal/api"
)

func newPushCmd(g *globals) *cobra.Command {
	var req api.PushRequest
	var quiet bool
	cmd := &cobra.Command{
		Use:   "push IMAGE",
		Short: "Push a cached image to its registry",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.apiClient()
			if err != nil {
				return err
			}
			req.Ref = args[0]
			if req.Auth, err = callerAuth(req.Ref); err != nil {
				return err
			}
			// The seed's footgun: warn about secrets a later layer hides.
			if fs, err := c.ScanImage(cmd.Context(), req.Ref); err == nil {
				for _, f := range fs {
					fmt.Fprintln(g.err, "WARNING: secret:", f)
				}
			}
			view := newProgressView(g.out, true, quiet)
			res, err := c.Push(cmd.Context(), req, view.update)
			view.finish(err == nil)
			if err != nil {
				return err
			}
			if quiet {
				_, err = fmt.Fprintln(g.out, res.Ref+"@"+res.Digest)
				return err
			}
			_, err = fmt.Fprintf(g.out, "%s: digest: %s\n", res.Ref, res.Digest)
			return err
		},
	}
	cmd.Flags().StringSliceVar(&req.InsecureRegistries, "insecure-registry", nil, "reach this registry (host[:port]) over plain HTTP (the daemon must allow it)")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print only the pushed reference with its digest")
	return cmd
}
