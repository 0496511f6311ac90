package cli

import (
	"github.com/spf13/cobra"
)

// newVolumeCmd is `ferry volume`: named block volumes that outlive
// machines (docker volume's verbs, Fly's extend and snapshots).
func newVolumeCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "volume",
		Aliases: []string{"volumes", "vol"},
		Short:   "Manage volumes (block devices that outlive machines; LUKS2-encrypted by default)",
		Args:    cobra.NoArgs,
	}
	cmd.AddCommand(newVolumeCreateCmd(g), newVolumeLsCmd(g), newVolumeInspectCmd(g), newVolumeRmCmd(g),
		newVolumePruneCmd(g), newVolumeExtendCmd(g), newVolumeSnapshotCmd(g))
	return cmd
}

// volumeAppFlag adds --app (default "default").
func volumeAppFlag(cmd *cobra.Command, app *string) {
	cmd.Flags().StringVar(app, "app", "default", "app the volumes belong to")
}
