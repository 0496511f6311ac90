package cli

import (
	"fmt"

	"github.com/spf13/cobra"
)

func newCreateCmd(g *globals) *cobra.Command {
	var f runFlags
	cmd := &cobra.Command{
		Use:   "create [flags] IMAGE [CMD...]",
		Short: "Create a machine without starting it (pulls the image if needed) and print its ID",
		Long: `Create IMAGE as a new machine, as run does, but leave it created:
ferry start boots it. Takes run's flags except -d, -i and --stop-timeout;
--rm destroys the machine when it exits after a later start.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f.detach = true // --rm: the daemon destroys it on exit
			req, err := f.createRequest(args)
			if err != nil {
				return err
			}
			req.SkipLaunch = true
			c, err := g.apiClient()
			if err != nil {
				return err
			}
			if err := pullIfMissing(cmd.Context(), g, c, req.Config.Image); err != nil {
				return err
			}
			m, err := c.CreateMachine(cmd.Context(), f.app, req)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(g.out, m.ID)
			return err
		},
	}
	f.add(cmd.Flags())
	return cmd
}
