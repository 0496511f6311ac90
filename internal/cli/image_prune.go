package cli

import (
	"bufio"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
)

func newImagePruneCmd(g *globals) *cobra.Command {
	var all, force bool
	cmd := &cobra.Command{
		Use:   "prune [-a] [-f]",
		Short: "Remove dangling images (-a: every image no machine uses) and unreferenced blobs",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !force && !confirm(g, cmd, pruneWarning(all)) {
				return nil
			}
			c, err := g.apiClient()
			if err != nil {
				return err
			}
			rep, err := c.PruneImages(cmd.Context(), all)
			if err != nil {
				return err
			}
			if len(rep.Deleted) > 0 {
				fmt.Fprintln(g.out, "Deleted Images:")
				for _, d := range rep.Deleted {
					fmt.Fprintf(g.out, "deleted: %s\n", d)
				}
				fmt.Fprintln(g.out)
			}
			_, err = fmt.Fprintf(g.out, "Total reclaimed space: %s\n", humanSize(rep.BytesFreed))
			return err
		},
	}
	cmd.Flags().BoolVarP(&all, "all", "a", false, "remove every image no lease holds, not just dangling ones")
	cmd.Flags().BoolVarP(&force, "force", "f", false, "do not prompt for confirmation")
	return cmd
}

func pruneWarning(all bool) string {
	if all {
		return "WARNING! This will remove all images without at least one machine associated to them."
	}
	return "WARNING! This will remove all dangling images."
}

// confirm asks a yes/no question on the command's input (docker's prompt);
// anything but y/yes (including no input) is no.
func confirm(g *globals, cmd *cobra.Command, warning string) bool {
	fmt.Fprintf(g.out, "%s\nAre you sure you want to continue? [y/N] ", warning)
	line, _ := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
	ans := strings.ToLower(strings.TrimSpace(line))
	if ans != "y" && ans != "yes" {
		fmt.Fprintln(g.out)
		return false
	}
	return true
}
