package cli

import (
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/ferryvm/ferry/internal/errdefs"
	"github.com/ferryvm/ferry/internal/image"
)

func newLoadCmd(g *globals) *cobra.Command {
	var input string
	var quiet bool
	cmd := &cobra.Command{
		Use:   "load [-i FILE]",
		Short: "Load images from a tar (OCI layout or docker save) file or stdin",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			in, closeIn, err := loadInput(cmd, input)
			if err != nil {
				return err
			}
			defer closeIn()
			c, err := g.apiClient()
			if err != nil {
				return err
			}
			loaded, err := c.LoadImages(cmd.Context(), in)
			if err != nil {
				return err
			}
			for _, l := range loaded {
				if len(l.Refs) == 0 {
					fmt.Fprintf(g.out, "Loaded image ID: %s\n", l.ID)
				}
				for _, r := range l.Refs {
					if quiet {
						fmt.Fprintln(g.out, r)
					} else {
						fmt.Fprintf(g.out, "Loaded image: %s\n", image.FamiliarName(r))
					}
				}
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&input, "input", "i", "", "read from this tar file instead of stdin")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print only the loaded references")
	return cmd
}

// loadInput opens -i FILE, or stdin when it is not a terminal.
func loadInput(cmd *cobra.Command, path string) (io.Reader, func(), error) {
	if path == "" {
		in := cmd.InOrStdin()
		if isTerminal(in) {
			return nil, nil, fmt.Errorf("load: stdin is a terminal; pass -i FILE or pipe a tar in: %w", errdefs.ErrInvalidArgument)
		}
		return in, func() {}, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("load: %w", err)
	}
	return f, func() { _ = f.Close() }, nil
}
