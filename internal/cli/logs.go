package cli

import (
	"github.com/spf13/cobra"

	"github.com/ferryvm/ferry/internal/api"
)

func newLogsCmd(g *globals) *cobra.Command {
	var app string
	var opt api.LogsOptions
	cmd := &cobra.Command{
		Use:   "logs [-f] [--tail N] MACHINE",
		Short: "Show a machine's console output",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.apiClient()
			if err != nil {
				return err
			}
			err = c.MachineLogs(cmd.Context(), app, args[0], opt, g.out)
			if cmd.Context().Err() != nil {
				return nil // Ctrl-C ends a follow
			}
			return err
		},
	}
	appFlag(cmd, &app)
	f := cmd.Flags()
	f.BoolVarP(&opt.Follow, "follow", "f", false, "keep streaming while the machine runs")
	f.IntVarP(&opt.Tail, "tail", "n", 0, "only the last N lines (0: all)")
	f.StringVar(&opt.Since, "since", "", "only output since a time (RFC 3339, Unix seconds or e.g. 10m ago)")
	return cmd
}
