package cli

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

func newNetworkLsCmd(g *globals) *cobra.Command {
	var filters []string
	var format string
	var quiet bool
	cmd := &cobra.Command{
		Use:     "ls [--filter label=K[=V]] [--format json]",
		Aliases: []string{"list"},
		Short:   "List networks",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o, err := listFilters(filters)
			if err != nil {
				return err
			}
			c, err := g.apiClient()
			if err != nil {
				return err
			}
			list, err := c.ListNetworks(cmd.Context(), o)
			if err != nil {
				return err
			}
			switch {
			case format == "json":
				return writeJSON(g.out, list)
			case format != "" && format != "table":
				return fmt.Errorf("--format %q: want table or json", format)
			case quiet:
				for _, n := range list {
					fmt.Fprintln(g.out, n.ID[:12])
				}
				return nil
			}
			tw := tabwriter.NewWriter(g.out, 0, 0, 3, ' ', 0)
			fmt.Fprintln(tw, "NETWORK ID\tNAME\tSUBNET\tSUBNET6\tGATEWAY\tINTERNAL\tBRIDGE")
			for _, n := range list {
				s6 := "-"
				if n.IPv6() {
					s6 = n.Subnet6.String()
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%v\t%s\n", n.ID[:12], n.Name, n.Subnet, s6, n.Gateway, n.Internal, n.Bridge)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringArrayVarP(&filters, "filter", "f", nil, "filter: label=KEY[=VALUE] or name=NAME")
	cmd.Flags().StringVar(&format, "format", "", "output format: table or json")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print only network IDs")
	return cmd
}
