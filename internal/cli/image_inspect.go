package cli

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/ferryvm/ferry/internal/api"
	"github.com/ferryvm/ferry/internal/image"
)

// inspectedImage is an image's details plus whether its rootfs base is
// built, and its size.
type inspectedImage struct {
	image.Details
	Rootfs *api.RootfsBase `json:"rootfs,omitempty"`
}

func newImageInspectCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "inspect IMAGE...",
		Short: "Show an image's digest, platform, config and layers as JSON",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.apiClient()
			if err != nil {
				return err
			}
			out := []inspectedImage{}
			var errs []error
			for _, ref := range args {
				d, err := c.InspectImage(cmd.Context(), ref)
				if err != nil {
					errs = append(errs, err)
					continue
				}
				item := inspectedImage{Details: d}
				if rb, err := c.InspectRootfs(cmd.Context(), d.ID.String()); err == nil {
					item.Rootfs = &rb
				}
				out = append(out, item)
			}
			if err := writeJSON(g.out, out); err != nil {
				return err
			}
			return joinErrors(errs)
		},
	}
}

// joinErrors reports several per-argument failures on one line each, the
// last of them carrying the error kind for the exit code.
func joinErrors(errs []error) error {
	switch len(errs) {
	case 0:
		return nil
	case 1:
		return errs[0]
	}
	return fmt.Errorf("%d failures: %w", len(errs), errors.Join(errs...))
}
