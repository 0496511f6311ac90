package cli

import (
	"encoding/json"
	"fmt"
	"text/tabwriter"

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
			st, err := controlplane.Open(cmd.Context(), *dsn)
			if err != nil {
				return err
			}
			defer func() { _ = st.Close() }()
			nets, err := st.Networks(cmd.Context())
			if err != nil {
				return err
			}
			if format == "json" {
				if nets == nil {
					nets = []controlplane.OverlayNetwork{}
				}
				return json.NewEncoder(g.out).Encode(nets)
			}
			tw := tabwriter.NewWriter(g.out, 0, 4, 2, ' ', 0)
			_, _ = fmt.Fprintln(tw, "NAME\tAPP\tVNI\tSUBNET\tSUBNET6")
			for _, n := range nets {
				_, _ = fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", n.Name, n.App, n.VNI, n.Subnet, n.Subnet6)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&format, "format", "", "output format: json")
	return cmd
}
