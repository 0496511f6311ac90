package cli

import (
	"context"

	ctypes "github.com/compose-spec/compose-go/v2/types"
	"github.com/spf13/cobra"

	"github.com/ferryvm/ferry/internal/compose"
)

// composeFlags are `ferry compose`'s global flags (docker compose's).
type composeFlags struct {
	opts compose.Options
}

func newComposeCmd(g *globals) *cobra.Command {
	f := &composeFlags{}
	cmd := &cobra.Command{
		Use:   "compose",
		Short: "Run multi-service applications from compose.yaml, one micro-VM per replica",
		Long: `Run the services of a compose file as machines, like docker compose.
The file is found as docker compose finds it (-f, COMPOSE_FILE, else
compose.yaml, compose.yml, docker-compose.yaml or docker-compose.yml here or
in a parent directory); .env, --env-file, profiles and several -f files work
as there. The project's machines live in the ferry app named after the
project, as PROJECT-SERVICE-N.`,
	}
	pf := cmd.PersistentFlags()
	pf.StringArrayVarP(&f.opts.Files, "file", "f", nil, "compose file (repeatable; later files override earlier ones)")
	pf.StringVarP(&f.opts.ProjectName, "project-name", "p", "", "project name (default: COMPOSE_PROJECT_NAME, the file's name:, the directory)")
	pf.StringArrayVar(&f.opts.Profiles, "profile", nil, "enable a profile (repeatable)")
	pf.StringArrayVar(&f.opts.EnvFiles, "env-file", nil, "environment file for interpolation (default: .env)")
	pf.StringVar(&f.opts.WorkingDir, "project-directory", "", "project directory (default: the first file's)")
	cmd.AddCommand(
		newComposeUpCmd(g, f),
		newComposeDownCmd(g, f),
		newComposePsCmd(g, f),
		newComposeConfigCmd(g, f),
	)
	return cmd
}

// load reads the project.
func (f *composeFlags) load(ctx context.Context) (*ctypes.Project, error) {
	return compose.Load(ctx, f.opts)
}
