package cli

import (
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/dustin/go-humanize"
	"github.com/spf13/cobra"

	"github.com/ferryvm/ferry/internal/api"
	"github.com/ferryvm/ferry/internal/errdefs"
)

// newSystemCmd is `ferry system`, the group for daemon-wide information.
func newSystemCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "system", Short: "Daemon-wide information", Args: cobra.NoArgs}
	cmd.AddCommand(newSystemDFCmd(g))
	return cmd
}

// newSystemDFCmd is `ferry system df`: images, rootfs bases and machine
// disks with their allocated (real) sizes.
func newSystemDFCmd(g *globals) *cobra.Command {
	var format string
	var verbose bool
	cmd := &cobra.Command{
		Use:   "df",
		Short: "Show disk use of images, rootfs bases, machine disks and volumes (allocated sizes)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if format != "" && format != "table" && format != "json" {
				return fmt.Errorf("--format %q: want table or json: %w", format, errdefs.ErrInvalidArgument)
			}
			c, err := g.apiClient()
			if err != nil {
				return err
			}
			df, err := c.SystemDF(cmd.Context())
			if err != nil {
				return err
			}
			if format == "json" {
				return writeJSON(g.out, df)
			}
			vols, err := c.ListVolumes(cmd.Context(), "")
			if err != nil {
				return err
			}
			return printDF(g.out, df, vols, verbose)
		},
	}
	cmd.Flags().StringVar(&format, "format", "", "output format: table (default) or json")
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "list every base and machine disk")
	return cmd
}

func printDF(w io.Writer, df api.SystemDF, vols []api.Volume, verbose bool) error {
	tw := tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)
	var baseAlloc, baseSize, mAlloc, mSize int64
	for _, b := range df.Bases {
		baseAlloc += b.Allocated
		baseSize += b.Size
	}
	for _, m := range df.Machines {
		mAlloc += m.Allocated
		mSize += m.Size
	}
	fmt.Fprintln(tw, "TYPE\tCOUNT\tALLOCATED\tAPPARENT")
	fmt.Fprintf(tw, "Images\t%d\t%s\t-\n", len(df.Images), dfSize(df.ContentBytes))
	fmt.Fprintf(tw, "Rootfs bases\t%d\t%s\t%s\n", len(df.Bases), dfSize(baseAlloc), dfSize(baseSize))
	fmt.Fprintf(tw, "Machine disks\t%d\t%s\t%s\n", len(df.Machines), dfSize(mAlloc), dfSize(mSize))
	fmt.Fprintf(tw, "Scratch templates\t-\t%s\t-\n", dfSize(df.TemplatesBytes))
	var vAlloc, vSize int64
	for _, v := range vols {
		vAlloc += v.AllocatedBytes
		vSize += v.SizeBytes
	}
	fmt.Fprintf(tw, "Volumes\t%d\t%s\t%s\n", len(vols), dfSize(vAlloc), dfSize(vSize))
	if verbose {
		fmt.Fprintln(tw, "\nBASE\tMACHINES\tALLOCATED\tAPPARENT")
		for _, b := range df.Bases {
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", dfShort(b.Digest), len(b.Machines), dfSize(b.Allocated), dfSize(b.Size))
		}
		fmt.Fprintln(tw, "\nMACHINE\tMODE\tALLOCATED\tAPPARENT")
		for _, m := range df.Machines {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", m.ID, m.Mode, dfSize(m.Allocated), dfSize(m.Size))
		}
		fmt.Fprintln(tw, "\nVOLUME\tAPP\tALLOCATED\tAPPARENT")
		for _, v := range vols {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", v.Name, v.App, dfSize(v.AllocatedBytes), dfSize(v.SizeBytes))
		}
	}
	return tw.Flush()
}

func dfSize(n int64) string { return humanize.IBytes(uint64(n)) }

func dfShort(digest string) string {
	if len(digest) > 19 {
		return digest[:19]
	}
	return digest
}
