package cli

import (
	"github.com/spf13/cobra"

	"github.com/ferryvm/ferry/internal/api/types"
)

// newAttachCmd is `ferry attach`: connect this terminal to the entrypoint
// of a machine started with `run -d -i[t]`, whose guest waits (a minute
// from each start) for a client before starting the entrypoint.
func newAttachCmd(g *globals) *cobra.Command {
	var app string
	cmd := &cobra.Command{
		Use:   "attach MACHINE",
		Short: "Attach this terminal to the entrypoint of a machine started with run -d -i[t]",
		Long: `Attach this terminal to the entrypoint of a machine created with
run -d -i or -d -it. Its guest waits up to a minute after each start for one
client before starting the entrypoint unattached, so attach right after
starting it. Exits with the entrypoint's status.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.apiClient()
			if err != nil {
				return err
			}
			m, err := c.GetMachine(cmd.Context(), app, args[0])
			if err != nil {
				return err
			}
			req := types.ExecRequest{Entrypoint: true, TTY: m.Config.Init.TTY}
			code, err := execAttached(cmd.Context(), g, c, app, m.ID, req, true)
			if err != nil {
				return err
			}
			if code != 0 {
				return exitError{code: code}
			}
			return nil
		},
	}
	appFlag(cmd, &app)
	return cmd
}
