package cli

import (
	"encoding/json"
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/ferryvm/ferry/internal/controlplane"
)

func newControlPlaneMachinesCmd(g *globals, dsn *string) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "machines",
		Short: "List the machines placed across hosts, with their HOST and its lease",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := controlplane.Open(cmd.Context(), *dsn)
			if err != nil {
				return err
			}
			defer func() { _ = st.Close() }()
			ms, err := st.Machines(cmd.Context())
			if err != nil {
				return err
			}
			if format == "json" {
				return json.NewEncoder(g.out).Encode(ms)
			}
			hosts, err := st.Hosts(cmd.Context())
			if err != nil {
				return err
			}
			byID := map[string]controlplane.HostStatus{}
			for _, h := range hosts {
				byID[h.ID] = h
			}
			tw := tabwriter.NewWriter(g.out, 0, 4, 2, ' ', 0)
			_, _ = fmt.Fprintln(tw, "APP\tNAME\tID\tHOST\tLEASE\tCPUS\tMEMORY\tVOLUME\tGENERATION")
			for _, m := range ms {
				h := byID[m.HostID]
				lease := "expired"
				if h.Live {
					lease = "live"
				}
				vol := m.Volume
				if vol == "" {
					vol = "-"
				}
				_, _ = fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%d MiB\t%s\t%d\n", m.App, m.Name, m.ID, h.Name, lease, m.CPUs, m.MemoryMB, vol, m.PlacedGeneration)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&format, "format", "", "output format: json")
	return cmd
}
