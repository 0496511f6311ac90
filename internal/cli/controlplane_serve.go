package cli

import (
	"fmt"
	"net"
	"time"

	"github.com/spf13/cobra"

	"github.com/ferryvm/ferry/internal/controlplane"
	"github.com/ferryvm/ferry/internal/errdefs"
)

func newControlPlaneServeCmd(g *globals, dsn, token *string) *cobra.Command {
	var addr string
	var ttl time.Duration
	var overcommit int
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve the control plane API (host registration and lease renewal)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if overcommit < 1 {
				return fmt.Errorf("--cpu-overcommit %d: want 1 (a machine CPU per host CPU) or more: %w", overcommit, errdefs.ErrInvalidArgument)
			}
			st, err := controlplane.Open(cmd.Context(), *dsn)
			if err != nil {
				return err
			}
			defer func() { _ = st.Close() }()
			st.CPUOvercommit = overcommit
			srv, err := controlplane.NewServer(st, *token, ttl, daemonLogger(g, false))
			if err != nil {
				return err
			}
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				return fmt.Errorf("controlplane listen: %w", err)
			}
			return srv.Serve(cmd.Context(), ln)
		},
	}
	cmd.Flags().StringVar(&addr, "addr", "127.0.0.1:7080", "listen address")
	cmd.Flags().IntVar(&overcommit, "cpu-overcommit", controlplane.DefaultCPUOvercommit, "machine CPUs placed per host CPU (1: dedicated)")
	cmd.Flags().DurationVar(&ttl, "lease-ttl", controlplane.DefaultLeaseTTL, "how long a host's lease lasts without renewal")
	return cmd
}
