package cli

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/ferryvm/ferry/internal/api/types"
	"github.com/ferryvm/ferry/internal/errdefs"
)

func newWaitCmd(g *globals) *cobra.Command {
	var app, state string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "wait [--state STATE|booted|healthy] MACHINE...",
		Short: "Wait until machines stop (or reach --state, boot, or are healthy) and print their exit codes",
		Long: `Wait until each machine stops and print its exit code, or until it
reaches --state (started, stopped, failed, destroyed) and print the state.
--state booted waits until a started machine's init takes exec requests (it
has started the entrypoint: ferry exec works) and prints its state; a
machine that is not starting or started returns at once.
--state healthy waits for the machine's health check to pass and fails,
naming the last check's output, when the machine turns unhealthy or stops.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if state == types.HealthHealthy {
				return waitHealthy(cmd.Context(), g, app, args, timeout)
			}
			st, ok := types.ParseWait(state)
			if !ok {
				return fmt.Errorf("--state %q: want started, stopped, failed, destroyed, booted or healthy: %w", state, errdefs.ErrInvalidArgument)
			}
			c, err := g.apiClient()
			if err != nil {
				return err
			}
			for _, n := range args {
				deadline := time.Now().Add(timeout)
				for {
					// The daemon bounds one wait; loop until ours is up.
					m, err := c.WaitMachine(cmd.Context(), app, n, st, 60*time.Second)
					if daemonSays(err, errdefs.ErrTimeout) && (timeout == 0 || time.Now().Before(deadline)) {
						continue
					}
					if err != nil {
						return err
					}
					if st == types.StateStopped && m.LastExit != nil {
						fmt.Fprintln(g.out, m.LastExit.ExitCode)
					} else {
						fmt.Fprintln(g.out, m.State)
					}
					break
				}
			}
			return nil
		},
	}
	appFlag(cmd, &app)
	cmd.Flags().StringVar(&state, "state", "stopped", "state to wait for, or booted or healthy")
	cmd.Flags().DurationVar(&timeout, "timeout", 0, "give up after this long (0: never)")
	return cmd
}
