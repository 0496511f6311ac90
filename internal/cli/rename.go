package cli

import (
	"github.com/spf13/cobra"
)

func newRenameCmd(g *globals) *cobra.Command {
	var app string
	cmd := &cobra.Command{
		Use:   "rename MACHINE NEW_NAME",
		Short: "Rename a machine",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.apiClient()
			if err != nil {
				return err
			}
			_, err = c.RenameMachine(cmd.Context(), app, args[0], args[1])
			return err
		},
	}
	appFlag(cmd, &app)
	return cmd
}
