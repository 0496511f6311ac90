package cli

import (
	"encoding/json"
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/ferryvm/ferry/internal/registry/store"
)

func newRegistryOrgCmd(g *globals, rf *registryFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "org", Short: "Manage registry organizations"}
	create := &cobra.Command{
		Use:   "create NAME",
		Short: "Create an organization (its own repository namespace)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return rf.withStore(cmd, func(st *store.Store) error {
				o, err := st.CreateOrg(cmd.Context(), args[0])
				if err != nil {
					return err
				}
				_, err = fmt.Fprintf(g.out, "created org %s\nnext: ferry registry token create --org %s\n", o.Name, o.Name)
				return err
			})
		},
	}
	list := &cobra.Command{
		Use:   "list",
		Short: "List organizations",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return rf.withStore(cmd, func(st *store.Store) error {
				orgs, err := st.Orgs(cmd.Context())
				if err != nil {
					return err
				}
				if rf.format == "json" {
					return json.NewEncoder(g.out).Encode(orgs)
				}
				tw := tabwriter.NewWriter(g.out, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "NAME\tID\tCREATED")
				for _, o := range orgs {
					fmt.Fprintf(tw, "%s\t%s\t%s\n", o.Name, o.ID, o.CreatedAt.Format("2006-01-02 15:04:05"))
				}
				return tw.Flush()
			})
		},
	}
	list.Flags().StringVar(&rf.format, "format", "", "output format: json")
	del := &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete an organization and its tokens (its blobs go at the next gc)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return rf.withStore(cmd, func(st *store.Store) error {
				if err := st.DeleteOrg(cmd.Context(), args[0]); err != nil {
					return err
				}
				_, err := fmt.Fprintf(g.out, "deleted org %s\n", args[0])
				return err
			})
		},
	}
	cmd.AddCommand(create, list, del)
	return cmd
}
