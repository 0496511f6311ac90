package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ferryvm/ferry/internal/network"
)

// newNetworkCmd is `ferry network`, Docker's network management group.
func newNetworkCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "network",
		Short: "Manage networks (private, isolated, with DNS names)",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newNetworkCreateCmd(g), newNetworkLsCmd(g), newNetworkInspectCmd(g), newNetworkRmCmd(g),
		newNetworkConnectCmd(g), newNetworkDisconnectCmd(g), newNetworkPruneCmd(g))
	return cmd
}

// parseLabels reads KEY=VALUE (or KEY: any value, for filters).
func parseLabels(in []string, needValue bool) (map[string]string, error) {
	if len(in) == 0 {
		return nil, nil
	}
	out := map[string]string{}
	for _, l := range in {
		k, v, ok := strings.Cut(l, "=")
		if k == "" || (needValue && !ok) {
			return nil, fmt.Errorf("label %q: want KEY=VALUE", l)
		}
		out[k] = v
	}
	return out, nil
}

// listFilters reads Docker's --filter label=K[=V] and name=S.
func listFilters(in []string) (network.ListOptions, error) {
	var o network.ListOptions
	var labels []string
	for _, f := range in {
		k, v, _ := strings.Cut(f, "=")
		switch k {
		case "label":
			labels = append(labels, v)
		case "name":
			o.Name = v
		default:
			return o, fmt.Errorf("--filter %q: want label=KEY[=VALUE] or name=NAME", f)
		}
	}
	var err error
	o.Labels, err = parseLabels(labels, false)
	return o, err
}
