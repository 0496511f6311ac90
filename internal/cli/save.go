package cli

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/ferryvm/ferry/internal/errdefs"
)

func newSaveCmd(g *globals) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "save [-o FILE] IMAGE...",
		Short: "Save images to an OCI layout tar (to a file, or stdout when it is not a terminal)",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.apiClient()
			if err != nil {
				return err
			}
			if output == "" {
				if isTerminal(g.out) {
					return fmt.Errorf("save: refusing to write a tar to a terminal; pass -o FILE or redirect stdout: %w", errdefs.ErrInvalidArgument)
				}
				return c.SaveImages(cmd.Context(), g.out, args)
			}
			// Write beside the target and rename, so a failed save never
			// leaves a truncated tar under the requested name.
			tmp, err := os.CreateTemp(filepath.Dir(output), "."+filepath.Base(output)+".*")
			if err != nil {
				return fmt.Errorf("save: %w", err)
			}
			defer func() { _ = os.Remove(tmp.Name()) }() // gone after the rename
			if err := c.SaveImages(cmd.Context(), tmp, args); err != nil {
				_ = tmp.Close()
				return err
			}
			if err := tmp.Close(); err != nil {
				return fmt.Errorf("save: %w", err)
			}
			//nolint:gosec // a saved image is an ordinary user file, as docker save writes it
			if err := os.Chmod(tmp.Name(), 0o644); err != nil {
				return fmt.Errorf("save: %w", err)
			}
			if err := os.Rename(tmp.Name(), output); err != nil {
				return fmt.Errorf("save: %w", err)
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "write to this file instead of stdout")
	return cmd
}
