package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/ferryvm/ferry/internal/image"
)

func newLogoutCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "logout [SERVER]",
		Short: "Remove a registry's credentials from ~/.docker/config.json",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			server := ""
			if len(args) == 1 {
				server = args[0]
			}
			if err := image.Logout(server); err != nil {
				return err
			}
			name := server
			if name == "" {
				name = "https://index.docker.io/v1/"
			}
			_, err := fmt.Fprintf(g.out, "Removing login credentials for %s\n", name)
			return err
		},
	}
}
