package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/ferryvm/ferry/internal/errdefs"
)

func newImageVerifyCmd(g *globals) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Re-hash every cached blob and check every image's blobs are present",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.apiClient()
			if err != nil {
				return err
			}
			rep, err := c.VerifyImages(cmd.Context())
			if err != nil {
				return err
			}
			if format == "json" {
				if err := writeJSON(g.out, rep); err != nil {
					return err
				}
			} else {
				for _, p := range rep.Corrupt {
					fmt.Fprintf(g.out, "corrupt: %s: %s\n", p.Digest, p.Reason)
				}
				for _, p := range rep.Missing {
					fmt.Fprintf(g.out, "missing: %s (image %s): %s\n", p.Digest, p.Image, p.Reason)
				}
				fmt.Fprintf(g.out, "%d images, %d blobs, %s verified\n", rep.Images, rep.Blobs, humanSize(rep.Bytes))
			}
			if !rep.OK() {
				return fmt.Errorf("image cache has %d corrupt and %d missing blobs; remove the affected images (ferry rmi -f) and pull them again: %w",
					len(rep.Corrupt), len(rep.Missing), errdefs.ErrConflict)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&format, "format", "", "output format: text (default) or json")
	return cmd
}
