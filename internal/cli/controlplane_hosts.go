package cli

import (
	"encoding/json"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/ferryvm/ferry/internal/controlplane"
)

func newControlPlaneHostsCmd(g *globals, dsn *string) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "hosts",
		Short: "List the hosts that joined, with their capacity and lease",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := controlplane.Open(cmd.Context(), *dsn)
			if err != nil {
				return err
			}
			defer func() { _ = st.Close() }()
			hosts, err := st.Hosts(cmd.Context())
			if err != nil {
				return err
			}
			if format == "json" {
				if hosts == nil {
					hosts = []controlplane.HostStatus{}
				}
				return json.NewEncoder(g.out).Encode(hosts)
			}
			tw := tabwriter.NewWriter(g.out, 0, 4, 2, ' ', 0)
			_, _ = fmt.Fprintln(tw, "ID\tNAME\tADDR\tCPUS\tMEMORY\tFREE MEMORY\tGENERATION\tLEASE")
			for _, h := range hosts {
				lease := "expired " + time.Since(h.Expires).Round(time.Second).String() + " ago"
				if h.Live {
					lease = "live"
				}
				_, _ = fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d MiB\t%d MiB\t%d\t%s\n", h.ID, h.Name, h.Addr, h.Size.CPUs, h.Size.MemoryMB, h.Free.MemoryMB, h.Generation, lease)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&format, "format", "", "output format: json")
	return cmd
}
