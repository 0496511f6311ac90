package cli

import (
	"encoding/json"
	"fmt"
	"text/tabwriter"

	"github.com/dustin/go-humanize"
	"github.com/spf13/cobra"

	"github.com/ferryvm/ferry/internal/errdefs"
	"github.com/ferryvm/ferry/internal/registry"
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
				cfg, err := rf.loadConfig(cmd)
				if err != nil {
					return err
				}
				tw := tabwriter.NewWriter(g.out, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "NAME\tID\tCREATED\tUSED\tQUOTA")
				for _, o := range orgs {
					used, quota, err := registry.OrgUsage(cmd.Context(), cfg, st, o)
					if err != nil {
						return err
					}
					q := "unlimited"
					if quota >= 0 {
						q = humanize.IBytes(uint64(quota))
					}
					if o.Quota == nil {
						q += " (default)"
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", o.Name, o.ID, o.CreatedAt.Format("2006-01-02 15:04:05"), humanize.IBytes(uint64(used)), q)
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
	quota := &cobra.Command{
		Use:   "quota NAME SIZE|unlimited|default",
		Short: "Set how much an organization may store (e.g. 50GiB; default: the server's limits.org_storage)",
		Long: "Set an organization's storage quota: its distinct blobs and manifests, each at full size,\n" +
			"plus what its open uploads hold. Pushes past it get 403 DENIED. Usage falls when gc frees\n" +
			"what the org deleted. \"unlimited\" lifts the limit; \"default\" returns to the server's.",
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			var q *int64
			switch args[1] {
			case "default":
			case "unlimited", "none":
				zero := int64(0)
				q = &zero
			default:
				size, err := registry.ParseSize(args[1])
				if err != nil {
					return err
				}
				if size <= 0 {
					return fmt.Errorf("quota %q: give a size above 0, \"unlimited\" or \"default\": %w", args[1], errdefs.ErrInvalidArgument)
				}
				v := int64(size)
				q = &v
			}
			return rf.withStore(cmd, func(st *store.Store) error {
				if err := st.SetOrgQuota(cmd.Context(), args[0], q); err != nil {
					return err
				}
				_, err := fmt.Fprintf(g.out, "quota of org %s: %s\n", args[0], args[1])
				return err
			})
		},
	}
	cmd.AddCommand(create, list, del, quota)
	return cmd
}
