package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/ferryvm/ferry/internal/controlplane"
)

func newControlPlaneNetworksCmd(g *globals, dsn *string) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "networks",
		Short: "List the cross-host networks: VNI, subnets, app",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return controlPlaneList(cmd, g, *dsn, format, "NAME\tAPP\tVNI\tSUBNET\tSUBNET6", (*controlplane.Store).Networks,
				func(n controlplane.OverlayNetwork) string {
					return fmt.Sprintf("%s\t%s\t%d\t%s\t%s", n.Name, n.App, n.VNI, n.Subnet, n.Subnet6)
				})
		},
	}
	cmd.Flags().StringVar(&format, "format", "", "output format: json")
	return cmd
}
