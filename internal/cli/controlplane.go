package cli

import (
	"os"

	"github.com/spf13/cobra"
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
