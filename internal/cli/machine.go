package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ferryvm/ferry/internal/api"
	"github.com/ferryvm/ferry/internal/api/types"
)

// newMachineCmd is `ferry machine …`: Fly-style aliases of the Docker-style
// machine verbs.
func newMachineCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "machine",
		Aliases: []string{"machines", "m"},
		Short:   "Manage machines (Fly-style aliases: run, list, status, start, stop, restart, destroy, exec, logs)",
	}
	alias := func(c *cobra.Command, use string, aliases ...string) *cobra.Command {
		c.Use = use + strings.TrimPrefix(c.Use, strings.Fields(c.Use)[0])
		c.Aliases = aliases
		return c
	}
	cmd.AddCommand(
		alias(newRunCmd(g), "run"),
		alias(newCreateCmd(g), "create"),
		alias(newPsCmd(g), "list", "ls"),
		alias(newInspectCmd(g), "status"),
		alias(newStartCmd(g), "start"),
		alias(newStopCmd(g), "stop"),
		alias(newRestartCmd(g), "restart"),
		alias(newKillCmd(g), "kill"),
		alias(newRmCmd(g), "destroy", "rm", "remove"),
		alias(newExecCmd(g), "exec"),
		alias(newLogsCmd(g), "logs"),
		alias(newWaitCmd(g), "wait"),
	)
	return cmd
}

// appFlag adds --app (default "default").
func appFlag(cmd *cobra.Command, app *string) {
	cmd.Flags().StringVar(app, "app", "default", "app the machines belong to")
}

// eachMachine runs fn for every name, printing the name on success like
// docker stop/rm do, and returns the first error after trying them all.
func eachMachine(ctx context.Context, g *globals, names []string, fn func(ctx context.Context, c *api.Client, name string) error) error {
	c, err := g.apiClient()
	if err != nil {
		return err
	}
	var errs []error
	for _, n := range names {
		if err := fn(ctx, c, n); err != nil {
			fmt.Fprintf(g.err, "ferry: %s: %v\n", n, err)
			errs = append(errs, err)
			continue
		}
		fmt.Fprintln(g.out, n)
	}
	if len(errs) == 1 {
		return silentError{errs[0]}
	}
	if len(errs) > 1 {
		return silentError{errors.Join(errs...)}
	}
	return nil
}

// silentError was already printed; it only sets the exit status.
type silentError struct{ err error }

func (e silentError) Error() string { return e.err.Error() }
func (e silentError) Unwrap() error { return e.err }

// machineStatus is ps's STATUS column, Docker-style.
func machineStatus(m *types.Machine, now time.Time) string {
	switch m.State {
	case types.StateStarted:
		return "Up " + ago(now.Sub(m.StartedAt)) + m.Health.Note()
	case types.StateStopped:
		if m.LastExit != nil {
			return fmt.Sprintf("Exited (%d) %s ago", m.LastExit.ExitCode, ago(now.Sub(m.LastExit.ExitedAt)))
		}
		return "Exited"
	case types.StateCreated:
		return "Created"
	case types.StateFailed:
		return "Failed"
	}
	s := string(m.State)
	return strings.ToUpper(s[:1]) + s[1:]
}

// ago is Docker's human duration ("3 seconds", "5 minutes").
func ago(d time.Duration) string {
	switch {
	case d < time.Second:
		return "Less than a second"
	case d < time.Minute:
		return plural(int(d/time.Second), "second")
	case d < time.Hour:
		return plural(int(d/time.Minute), "minute")
	case d < 48*time.Hour:
		return plural(int(d/time.Hour), "hour")
	}
	return plural(int(d/(24*time.Hour)), "day")
}

func plural(n int, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	return fmt.Sprintf("%d %ss", n, unit)
}
