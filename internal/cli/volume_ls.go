package cli

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/ferryvm/ferry/internal/api"
	"github.com/ferryvm/ferry/internal/errdefs"
	"github.com/ferryvm/ferry/internal/volume"
)

func newVolumeLsCmd(g *globals) *cobra.Command {
	var app, format string
	var quiet bool
	cmd := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List volumes",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if format != "" && format != "table" && format != "json" {
				return fmt.Errorf("--format %q: want table or json: %w", format, errdefs.ErrInvalidArgument)
			}
			c, err := g.apiClient()
			if err != nil {
				return err
			}
			list, err := c.ListVolumes(cmd.Context(), app)
			if err != nil {
				return err
			}
			switch {
			case format == "json":
				if list == nil {
					list = []api.Volume{}
				}
				return writeJSON(g.out, list)
			case quiet:
				for _, v := range list {
					fmt.Fprintln(g.out, v.Name)
				}
				return nil
			}
			return printVolumes(g.out, list)
		},
	}
	cmd.Flags().StringVar(&app, "app", "", "only the volumes of this app (default: every app)")
	cmd.Flags().StringVar(&format, "format", "", "output format: table (default) or json")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print only names")
	return cmd
}

func printVolumes(w io.Writer, list []api.Volume) error {
	tw := tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)
	fmt.Fprintln(tw, "NAME\tAPP\tSIZE\tENCRYPTED\tATTACHED\tALLOCATED\tID")
	for _, v := range list {
		var at []string
		for _, a := range v.Attachments {
			s := a.MachineID
			if a.ReadOnly {
				s += ":ro"
			}
			if !a.Active {
				s += " (stopped)"
			}
			at = append(at, s)
		}
		if len(at) == 0 {
			at = []string{"-"}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%v\t%s\t%s\t%s\n", v.Name, v.App, volume.FormatSize(v.SizeBytes), v.Encrypted,
			strings.Join(at, ","), dfSize(v.AllocatedBytes), v.ID)
	}
	return tw.Flush()
}
