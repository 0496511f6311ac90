package cli

import (
	"encoding/json"
	"fmt"
	"text/template"

	"github.com/spf13/cobra"

	"github.com/ferryvm/ferry/internal/api/types"
	"github.com/ferryvm/ferry/internal/errdefs"
)

func newInspectCmd(g *globals) *cobra.Command {
	var app, format string
	cmd := &cobra.Command{
		Use:   "inspect [--format TEMPLATE] MACHINE...",
		Short: "Show machines as JSON (config, state, network, health, exit, events)",
		Long: `Show machines as a JSON array, or with --format a Go template run on
each machine (its fields as the API's Machine type names them, e.g.
'{{.State}}', '{{.Health.Status}}', '{{json .Health}}').`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var tmpl *template.Template
			if format != "" && format != "json" {
				var err error
				tmpl, err = template.New("format").Funcs(template.FuncMap{"json": jsonString}).Parse(format)
				if err != nil {
					return fmt.Errorf("--format: %v: %w", err, errdefs.ErrInvalidArgument)
				}
			}
			c, err := g.apiClient()
			if err != nil {
				return err
			}
			var out []*types.Machine
			for _, n := range args {
				m, err := c.GetMachine(cmd.Context(), app, n)
				if err != nil {
					return err
				}
				out = append(out, m)
			}
			if tmpl == nil {
				return writeJSON(g.out, out)
			}
			for _, m := range out {
				if err := tmpl.Execute(g.out, m); err != nil {
					return fmt.Errorf("--format on %s: %v: %w", m.ID, err, errdefs.ErrInvalidArgument)
				}
				fmt.Fprintln(g.out)
			}
			return nil
		},
	}
	appFlag(cmd, &app)
	cmd.Flags().StringVarP(&format, "format", "f", "", "json (default) or a Go template, e.g. '{{.Health.Status}}'")
	return cmd
}

// jsonString is the templates' json function, Docker's.
func jsonString(v any) (string, error) {
	b, err := json.Marshal(v)
	return string(b), err
}
