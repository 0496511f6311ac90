package cli

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/dustin/go-humanize"
	"github.com/spf13/cobra"

	"github.com/ferryvm/ferry/internal/errdefs"
)

// newImageRootfsCmd is `ferry image rootfs REF [-o FILE]`: build (or
// reuse) the image's read-only ext4 base and print its path, or copy it
// to FILE.
func newImageRootfsCmd(g *globals) *cobra.Command {
	var out, format string
	cmd := &cobra.Command{
		Use:   "rootfs IMAGE [-o FILE]",
		Short: "Build (or reuse) an image's read-only ext4 root filesystem and print its path",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if format != "" && format != "json" {
				return fmt.Errorf("--format %q: want json: %w", format, errdefs.ErrInvalidArgument)
			}
			c, err := g.apiClient()
			if err != nil {
				return err
			}
			b, err := c.EnsureRootfs(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if out != "" {
				if err := downloadTo(cmd, out, func(f *os.File) error {
					_, err := c.DownloadRootfs(cmd.Context(), args[0], f)
					return err
				}); err != nil {
					return err
				}
			}
			switch {
			case format == "json":
				return writeJSON(g.out, b)
			case out != "":
				fmt.Fprintf(g.out, "%s (%s)\n", out, humanize.IBytes(uint64(b.Size)))
			default:
				fmt.Fprintln(g.out, b.Path)
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&out, "output", "o", "", "copy the ext4 image to FILE instead of printing the daemon's path")
	cmd.Flags().StringVar(&format, "format", "", "json: print the base's digest, path and sizes")
	return cmd
}

// downloadTo writes FILE through a temporary file in its directory and
// renames it into place only when the copy completed.
func downloadTo(cmd *cobra.Command, dst string, fill func(*os.File) error) error {
	f, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".*")
	if err != nil {
		return fmt.Errorf("-o %s: %w", dst, err)
	}
	err = fill(f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), dst)
	}
	if err != nil {
		_ = os.Remove(f.Name())
		return fmt.Errorf("-o %s: %w", dst, err)
	}
	return nil
}
