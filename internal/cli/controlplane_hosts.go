package cli

import (
	"fmt"
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
			return controlPlaneList(cmd, g, *dsn, format, "ID\tNAME\tADDR\tCPUS\tMEMORY\tFREE MEMORY\tGENERATION\tLEASE", (*controlplane.Store).Hosts,
				func(h controlplane.HostStatus) string {
					lease := "expired " + time.Since(h.Expires).Round(time.Second).String() + " ago"
					if h.Live {
						lease = "live"
					}
					return fmt.Sprintf("%s\t%s\t%s\t%d\t%d MiB\t%d MiB\t%d\t%s", h.ID, h.Name, h.Addr, h.Size.CPUs, h.Size.MemoryMB, h.Free.MemoryMB, h.Generation, lease)
				})
		},
	}
	cmd.Flags().StringVar(&format, "format", "", "output format: json")
	return cmd
}
