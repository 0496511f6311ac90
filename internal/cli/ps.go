package cli

import (
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/ferryvm/ferry/internal/api/types"
	"github.com/ferryvm/ferry/internal/errdefs"
)

func newPsCmd(g *globals) *cobra.Command {
	var app, format string
	var filters []string
	var all, quiet, allApps bool
	cmd := &cobra.Command{
		Use:   "ps [-a] [--filter health=STATUS]... [--format json]",
		Short: "List machines (running ones; -a for all)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if format != "" && format != "table" && format != "json" {
				return fmt.Errorf("--format %q: want table or json: %w", format, errdefs.ErrInvalidArgument)
			}
			keep, err := parsePsFilters(filters)
			if err != nil {
				return err
			}
			c, err := g.apiClient()
			if err != nil {
				return err
			}
			if allApps {
				app = ""
			}
			list, err := c.ListMachines(cmd.Context(), app, all)
			if err != nil {
				return err
			}
			list = slices.DeleteFunc(list, func(m *types.Machine) bool { return !keep(m) })
			switch {
			case format == "json":
				return writeJSON(g.out, list)
			case quiet:
				for _, m := range list {
					fmt.Fprintln(g.out, m.ID)
				}
				return nil
			}
			return printMachines(g, list)
		},
	}
	appFlag(cmd, &app)
	f := cmd.Flags()
	f.BoolVarP(&all, "all", "a", false, "show all machines (default: running ones)")
	f.BoolVarP(&quiet, "quiet", "q", false, "print only machine IDs")
	f.BoolVar(&allApps, "all-apps", false, "list the machines of every app")
	f.StringVar(&format, "format", "", "output format: table or json")
	f.StringArrayVarP(&filters, "filter", "f", nil, "show only machines matching KEY=VALUE (repeatable; health=starting|healthy|unhealthy|none)")
	return cmd
}

// healthValues are what --filter health= takes, docker ps's.
var healthValues = []string{types.HealthStarting, types.HealthHealthy, types.HealthUnhealthy, "none"}

// parsePsFilters turns --filter KEY=VALUE flags into a predicate: values
// of one key are alternatives, different keys must all match.
func parsePsFilters(filters []string) (func(*types.Machine) bool, error) {
	var health []string
	for _, f := range filters {
		k, v, ok := strings.Cut(f, "=")
		switch {
		case !ok:
			return nil, fmt.Errorf("--filter %q: want KEY=VALUE: %w", f, errdefs.ErrInvalidArgument)
		case k != "health":
			return nil, fmt.Errorf("--filter %q: unknown key %q (ferry ps filters on health): %w", f, k, errdefs.ErrInvalidArgument)
		case !slices.Contains(healthValues, v):
			return nil, fmt.Errorf("--filter %q: want health=%s: %w", f, strings.Join(healthValues, "|"), errdefs.ErrInvalidArgument)
		}
		health = append(health, v)
	}
	return func(m *types.Machine) bool {
		return len(health) == 0 || slices.Contains(health, healthOf(m))
	}, nil
}

// healthOf is a machine's health status, "none" without a running check.
func healthOf(m *types.Machine) string {
	if m.Health == nil {
		return "none"
	}
	return m.Health.Status
}

func printMachines(g *globals, list []*types.Machine) error {
	tw := tabwriter.NewWriter(g.out, 0, 0, 3, ' ', 0)
	// Through a control plane every machine has its host: a HOST column.
	hosts := slices.ContainsFunc(list, func(m *types.Machine) bool { return m.Host != "" })
	hostCol := func(m *types.Machine) string {
		if !hosts {
			return ""
		}
		return "\t" + m.Host
	}
	if hosts {
		fmt.Fprintln(tw, "MACHINE ID\tIMAGE\tCOMMAND\tCREATED\tSTATUS\tIP\tPORTS\tNETWORKS\tNAME\tHOST")
	} else {
		fmt.Fprintln(tw, "MACHINE ID\tIMAGE\tCOMMAND\tCREATED\tSTATUS\tIP\tPORTS\tNETWORKS\tNAME")
	}
	now := time.Now()
	for _, m := range list {
		cmd := strings.Join(append(append([]string{}, m.ImageConfig.Entrypoint...), m.ImageConfig.Cmd...), " ")
		switch {
		case len(m.Config.Init.Exec) > 0:
			cmd = strings.Join(m.Config.Init.Exec, " ")
		case m.Config.Init.Entrypoint != nil || m.Config.Init.Cmd != nil:
			ep := m.ImageConfig.Entrypoint
			c := m.ImageConfig.Cmd
			if m.Config.Init.Entrypoint != nil {
				ep, c = m.Config.Init.Entrypoint, nil
			}
			if m.Config.Init.Cmd != nil {
				c = m.Config.Init.Cmd
			}
			cmd = strings.Join(append(append([]string{}, ep...), c...), " ")
		}
		if len(cmd) > 22 {
			cmd = cmd[:21] + "…"
		}
		fmt.Fprintf(tw, "%s\t%s\t%q\t%s ago\t%s\t%s\t%s\t%s\t%s%s\n", m.ID, m.Config.Image, cmd, ago(now.Sub(m.CreatedAt)),
			machineStatus(m, now), m.IP(), portsColumn(m), networksColumn(m), m.Name, hostCol(m))
	}
	return tw.Flush()
}
