package cli

import (
	"github.com/spf13/cobra"
)

func newComposeConfigCmd(_ *globals, f *composeFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "config",
		Short: "Print the project as loaded: interpolated, merged and normalized",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			proj, err := f.load(cmd.Context())
			if err != nil {
				return err
			}
			b, err := proj.MarshalYAML()
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(b)
			return err
		},
	}
}
