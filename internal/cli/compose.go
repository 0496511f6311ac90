package cli

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	ctypes "github.com/compose-spec/compose-go/v2/types"
	"github.com/spf13/cobra"

	"github.com/ferryvm/ferry/internal/api"
	"github.com/ferryvm/ferry/internal/api/types"
	"github.com/ferryvm/ferry/internal/compose"
	"github.com/ferryvm/ferry/internal/errdefs"
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
	// -f is compose's own (before the verb): logs -f is follow.
	cmd.Flags().StringArrayVarP(&f.opts.Files, "file", "f", nil, "compose file (repeatable; later files override earlier ones)")
	pf := cmd.PersistentFlags()
	pf.StringVarP(&f.opts.ProjectName, "project-name", "p", "", "project name (default: COMPOSE_PROJECT_NAME, the file's name:, the directory)")
	pf.StringArrayVar(&f.opts.Profiles, "profile", nil, "enable a profile (repeatable)")
	pf.StringArrayVar(&f.opts.EnvFiles, "env-file", nil, "environment file for interpolation (default: .env)")
	pf.StringVar(&f.opts.WorkingDir, "project-directory", "", "project directory (default: the first file's)")
	cmd.AddCommand(
		newComposeUpCmd(g, f),
		newComposeDownCmd(g, f),
		newComposePsCmd(g, f),
		newComposeConfigCmd(g, f),
		newComposeLogsCmd(g, f),
		newComposeExecCmd(g, f),
		newComposeStartCmd(g, f),
		newComposeStopCmd(g, f),
		newComposeRestartCmd(g, f),
		newComposeKillCmd(g, f),
		newComposeRmCmd(g, f),
		newComposeBuildCmd(g, f),
		newComposePullCmd(g, f),
		newComposePushCmd(g, f),
		newComposeRunCmd(g, f),
	)
	return cmd
}

// load reads the project.
func (f *composeFlags) load(ctx context.Context) (*ctypes.Project, error) {
	return compose.Load(ctx, f.opts)
}

// plan loads the project, plans it (no --scale) and returns the plan with
// the daemon client.
func (f *composeFlags) plan(ctx context.Context, g *globals) (*compose.Plan, *api.Client, error) {
	proj, err := f.load(ctx)
	if err != nil {
		return nil, nil, err
	}
	plan, err := compose.NewPlan(proj, nil)
	if err != nil {
		return nil, nil, err
	}
	c, err := g.apiClient()
	if err != nil {
		return nil, nil, err
	}
	return plan, c, nil
}

// machines loads the project and returns the daemon client, the project's
// name and its machines (of services, when named), sorted by name.
func (f *composeFlags) machines(ctx context.Context, g *globals, services []string) (*api.Client, string, []*types.Machine, error) {
	proj, err := f.load(ctx)
	if err != nil {
		return nil, "", nil, err
	}
	for _, s := range services {
		if _, ok := proj.Services[s]; !ok {
			return nil, "", nil, fmt.Errorf("no such service: %s: %w", s, errdefs.ErrNotFound)
		}
	}
	c, err := g.apiClient()
	if err != nil {
		return nil, "", nil, err
	}
	ms, err := compose.Machines(ctx, c, proj.Name)
	if err != nil {
		return nil, "", nil, err
	}
	if len(services) > 0 {
		ms = slices.DeleteFunc(ms, func(m *types.Machine) bool {
			return !slices.Contains(services, m.Config.Metadata[compose.LabelService])
		})
	}
	slices.SortFunc(ms, func(a, b *types.Machine) int { return strings.Compare(a.Name, b.Name) })
	return c, proj.Name, ms, nil
}

// forProject runs fn on every machine at once and joins the errors.
func forProject(ms []*types.Machine, fn func(*types.Machine) error) error {
	errs := make([]error, len(ms))
	var wg sync.WaitGroup
	for i, m := range ms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := fn(m); err != nil {
				errs[i] = fmt.Errorf("%s: %w", m.Name, err)
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// composeVerb is a verb that acts on the project's machines
// (start, stop, restart, kill, rm).
func composeVerb(g *globals, f *composeFlags, use, short string, fn func(ctx context.Context, c *api.Client, app string, m *types.Machine) error) *cobra.Command {
	return &cobra.Command{
		Use:   use + " [SERVICE...]",
		Short: short,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, app, ms, err := f.machines(cmd.Context(), g, args)
			if err != nil {
				return err
			}
			return forProject(ms, func(m *types.Machine) error {
				if err := fn(cmd.Context(), c, app, m); err != nil {
					return err
				}
				fmt.Fprintln(g.err, m.Name)
				return nil
			})
		},
	}
}
