package cli

import (
	"github.com/spf13/cobra"

	"github.com/ferryvm/ferry/internal/api/types"
)

func newInspectCmd(g *globals) *cobra.Command {
	var app string
	cmd := &cobra.Command{
		Use:   "inspect MACHINE...",
		Short: "Show machines as JSON (config, state, network, exit, events)",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.apiClient()
			if err != nil {
				return err
			}
			var out []*types.Machine
			for _, n := range args {
				m, err := c.GetMachine(cmd.Context(), app, n)
				if err != nil {
					return err
				}
				out = append(out, m)
			}
			return writeJSON(g.out, out)
		},
	}
	appFlag(cmd, &app)
	return cmd
}
