package cli

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/ferryvm/ferry/internal/api/types"
)

func newStatsCmd(g *globals) *cobra.Command {
	var app, format string
	cmd := &cobra.Command{
		Use:   "stats [MACHINE...]",
		Short: "Show CPU and memory use of machines' VMM processes (default: all running)",
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.apiClient()
			if err != nil {
				return err
			}
			if len(args) == 0 {
				list, err := c.ListMachines(cmd.Context(), app, false)
				if err != nil {
					return err
				}
				for _, m := range list {
					args = append(args, m.ID)
				}
			}
			var out []*types.Stats
			for _, n := range args {
				s, err := c.MachineStats(cmd.Context(), app, n)
				if err != nil {
					return err
				}
				out = append(out, s)
			}
			if format == "json" {
				return writeJSON(g.out, out)
			}
			tw := tabwriter.NewWriter(g.out, 0, 0, 3, ' ', 0)
			fmt.Fprintln(tw, "MACHINE ID\tNAME\tPID\tCPU %\tMEM USAGE / LIMIT")
			for _, s := range out {
				fmt.Fprintf(tw, "%s\t%s\t%d\t%.2f%%\t%s / %dMiB\n", s.ID, s.Name, s.PID, s.CPUPercent, humanSize(s.MemoryRSS), s.MemoryMB)
			}
			return tw.Flush()
		},
	}
	appFlag(cmd, &app)
	cmd.Flags().StringVar(&format, "format", "", "output format: table or json")
	return cmd
}
