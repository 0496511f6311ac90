package cli

import (
	"github.com/spf13/cobra"

	"github.com/ferryvm/ferry/internal/api"
)

func newVolumeInspectCmd(g *globals) *cobra.Command {
	var app string
	cmd := &cobra.Command{
		Use:   "inspect VOLUME...",
		Short: "Show volumes as JSON (name, id or id prefix)",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.apiClient()
			if err != nil {
				return err
			}
			out := []api.Volume{}
			for _, n := range args {
				v, err := c.GetVolume(cmd.Context(), app, n)
				if err != nil {
					return err
				}
				out = append(out, *v)
			}
			return writeJSON(g.out, out)
		},
	}
	volumeAppFlag(cmd, &app)
	return cmd
}
