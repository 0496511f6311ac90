package cli

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ferryvm/ferry/internal/api/types"
	"github.com/ferryvm/ferry/internal/errdefs"
)

func newEventsCmd(g *globals) *cobra.Command {
	var app, format string
	var filters []string
	var allApps bool
	cmd := &cobra.Command{
		Use:   "events [--filter event=TYPE]... [--format json] [MACHINE]",
		Short: "Stream machine events (create, start, exit, health_status, ...) until interrupted",
		Long: `Stream the events of the app's machines (or of MACHINE) as they happen,
one line each, as docker events prints them:
  TIME machine TYPE[: STATUS] ID (app=APP, state=STATE, ...)
A health check's change is "health_status: healthy" (or unhealthy,
starting). --format json prints each event as the API sends it.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if format != "" && format != "json" {
				return fmt.Errorf("--format %q: want json: %w", format, errdefs.ErrInvalidArgument)
			}
			var kinds []string
			for _, f := range filters {
				k, v, ok := strings.Cut(f, "=")
				if !ok || k != "event" || v == "" {
					return fmt.Errorf("--filter %q: want event=TYPE (create, start, exit, health_status, ...): %w", f, errdefs.ErrInvalidArgument)
				}
				kinds = append(kinds, v)
			}
			c, err := g.apiClient()
			if err != nil {
				return err
			}
			if allApps {
				app = ""
			}
			id := ""
			if len(args) == 1 {
				m, err := c.GetMachine(cmd.Context(), app, args[0])
				if err != nil {
					return err
				}
				id, app = m.ID, m.App
			}
			err = c.Events(cmd.Context(), app, id, func(e types.Event) error {
				if len(kinds) > 0 && !slices.Contains(kinds, e.Type) {
					return nil
				}
				if format == "json" {
					return json.NewEncoder(g.out).Encode(e)
				}
				_, err := fmt.Fprintln(g.out, eventLine(e))
				return err
			})
			if cmd.Context().Err() != nil {
				return nil // interrupted: the normal end
			}
			return err
		},
	}
	appFlag(cmd, &app)
	cmd.Flags().BoolVar(&allApps, "all-apps", false, "stream the events of every app")
	cmd.Flags().StringArrayVarP(&filters, "filter", "f", nil, "only events of a type: event=TYPE (repeatable)")
	cmd.Flags().StringVar(&format, "format", "", "json: one API event per line")
	return cmd
}

// eventLine is e as docker events prints a container's.
func eventLine(e types.Event) string {
	action := e.Type
	attrs := []string{"app=" + e.App, "state=" + string(e.State)}
	switch {
	case e.Type == "health_status":
		action += ": " + e.Status
	case e.Status != "":
		attrs = append(attrs, "status="+e.Status)
	}
	if e.Exit != nil {
		attrs = append(attrs, fmt.Sprintf("exitCode=%d", e.Exit.ExitCode))
	}
	return fmt.Sprintf("%s machine %s %s (%s)", e.Time.Format(time.RFC3339Nano), action, e.MachineID, strings.Join(attrs, ", "))
}
