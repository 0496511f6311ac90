package cli

import (
	"github.com/spf13/cobra"

	"github.com/ferryvm/ferry/internal/api"
)

// apiClient returns a client for the daemon named by --host/--token.
func (g *globals) apiClient() (*api.Client, error) { return api.NewClient(g.host, g.token) }

// newImageCmd is `ferry image`, the management group for the image cache
// (docker image ls/rm/inspect/prune/pull/push/tag/load/save).
func newImageCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "image",
		Short: "Manage the image cache",
		Args:  cobra.NoArgs,
	}
	ls := newImagesCmd(g)
	ls.Use, ls.Aliases = "ls [REPOSITORY[:TAG]]", []string{"list"}
	rm := newRmiCmd(g)
	rm.Use, rm.Aliases = "rm [-f] IMAGE...", []string{"remove"}
	cmd.AddCommand(ls, rm,
		newImageInspectCmd(g),
		newImageRootfsCmd(g),
		newImagePruneCmd(g),
		newImageVerifyCmd(g),
		newImageScanCmd(g),
		newPullCmd(g),
		newPushCmd(g),
		newTagCmd(g),
		newLoadCmd(g),
		newSaveCmd(g),
	)
	return cmd
}
