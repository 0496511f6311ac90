package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/ferryvm/ferry/internal/errdefs"
)

func newImageScanCmd(g *globals) *cobra.Command {
	var format string
	var fail bool
	cmd := &cobra.Command{
		Use:   "scan [--format json] IMAGE",
		Short: "Find secrets a later layer hides but the image still ships",
		Long: "Scan every layer of a cached image for files that look like secrets (private keys, .env files,\n" +
			"cloud credentials, high-entropy tokens) which a later layer deletes or overwrites: they are\n" +
			"invisible in the container yet readable by anyone who pulls the image.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.apiClient()
			if err != nil {
				return err
			}
			fs, err := c.ScanImage(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			switch format {
			case "json":
				if err := writeJSON(g.out, fs); err != nil {
					return err
				}
			case "", "table":
				if len(fs) == 0 {
					fmt.Fprintf(g.out, "%s: no hidden secrets found\n", args[0])
				}
				for _, f := range fs {
					fmt.Fprintln(g.out, f.String())
				}
			default:
				return fmt.Errorf("--format %q: want table or json: %w", format, errdefs.ErrInvalidArgument)
			}
			if fail && len(fs) > 0 {
				return fmt.Errorf("%s: %d hidden secret(s): rebuild without them (RUN --mount=type=secret keeps secrets out of every layer): %w", args[0], len(fs), errdefs.ErrConflict)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&format, "format", "", "output format: table or json")
	cmd.Flags().BoolVar(&fail, "fail-on-secrets", false, "exit with an error when a secret is found")
	return cmd
}
