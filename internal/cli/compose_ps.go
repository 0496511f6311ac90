package cli

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/ferryvm/ferry/internal/api/types"
	"github.com/ferryvm/ferry/internal/compose"
	"github.com/ferryvm/ferry/internal/errdefs"
)

func newComposePsCmd(g *globals, f *composeFlags) *cobra.Command {
	var all bool
	var format string
	cmd := &cobra.Command{
		Use:   "ps [flags]",
		Short: "List the project's machines",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if format != "" && format != "json" && format != "table" {
				return fmt.Errorf("--format %q: want table or json: %w", format, errdefs.ErrInvalidArgument)
			}
			proj, err := f.load(cmd.Context())
			if err != nil {
				return err
			}
			c, err := g.apiClient()
			if err != nil {
				return err
			}
			ms, err := compose.Machines(cmd.Context(), c, proj.Name)
			if err != nil {
				return err
			}
			ms = slices.DeleteFunc(ms, func(m *types.Machine) bool { return !all && m.State != types.StateStarted })
			slices.SortFunc(ms, func(a, b *types.Machine) int { return strings.Compare(a.Name, b.Name) })
			out := cmd.OutOrStdout()
			if format == "json" {
				return json.NewEncoder(out).Encode(ms)
			}
			tw := tabwriter.NewWriter(out, 0, 4, 3, ' ', 0)
			fmt.Fprintln(tw, "NAME\tSERVICE\tSTATE\tSTATUS\tIMAGE\tPORTS")
			now := time.Now()
			for _, m := range ms {
				var ports []string
				if m.Network != nil {
					for _, p := range m.Network.Ports {
						ports = append(ports, fmt.Sprintf("%s:%d->%d/%s", p.HostIP, p.HostPort, p.GuestPort, p.Protocol))
					}
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", m.Name, m.Config.Metadata[compose.LabelService], m.State, machineStatus(m, now),
					m.Config.Image, strings.Join(ports, ", "))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVarP(&all, "all", "a", false, "also stopped machines")
	cmd.Flags().StringVar(&format, "format", "", "table (default) or json")
	return cmd
}
