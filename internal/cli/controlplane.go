package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/ferryvm/ferry/internal/controlplane"
)

func newControlPlaneCmd(g *globals) *cobra.Command {
	var dsn, token string
	cmd := &cobra.Command{
		Use:   "controlplane",
		Short: "Run the multi-host control plane (hosts and leases on Postgres; see docs/scale-out.md)",
		Long: "ferry controlplane serves the control plane of several ferry hosts from one Postgres\n" +
			"database. Run as many replicas as you like on the same --db; hosts join with\n" +
			"`ferry daemon --join URL --join-token T`, register their capacity and renew a lease.",
	}
	pf := cmd.PersistentFlags()
	pf.StringVar(&dsn, "db", os.Getenv("FERRY_CONTROLPLANE_DB"), "Postgres URL of the control plane's database; env FERRY_CONTROLPLANE_DB")
	pf.StringVar(&token, "token", os.Getenv("FERRY_CONTROLPLANE_TOKEN"), "bearer token hosts and clients present; env FERRY_CONTROLPLANE_TOKEN")
	cmd.AddCommand(newControlPlaneServeCmd(g, &dsn, &token), newControlPlaneHostsCmd(g, &dsn), newControlPlaneMachinesCmd(g, &dsn),
		newControlPlaneNetworksCmd(g, &dsn))
	return cmd
}

// controlPlaneList runs a listing verb of the control plane: it opens the
// store at dsn, reads the rows with list (a Store method expression) and prints them to g.out as JSON
// (--format json; [] when there are none) or as a table: header, then one
// tab-separated line per row.
func controlPlaneList[T any](cmd *cobra.Command, g *globals, dsn, format, header string,
	list func(*controlplane.Store, context.Context) ([]T, error), line func(T) string) error {
	st, err := controlplane.Open(cmd.Context(), dsn)
	if err != nil {
		return err
	}
	defer func() { _ = st.Close() }()
	rows, err := list(st, cmd.Context())
	if err != nil {
		return err
	}
	if format == "json" {
		if rows == nil {
			rows = []T{}
		}
		return json.NewEncoder(g.out).Encode(rows)
	}
	tw := tabwriter.NewWriter(g.out, 0, 4, 2, ' ', 0)
	_, _ = fmt.Fprintln(tw, header)
	for _, r := range rows {
		_, _ = fmt.Fprintln(tw, line(r))
	}
	return tw.Flush()
}
