package cli

import (
	"os"
	"time"

	"github.com/mattn/go-shellwords"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/ferryvm/ferry/internal/compose"
)

func newComposeRunCmd(g *globals, f *composeFlags) *cobra.Command {
	var o compose.RunOptions
	var rm, detach, noTTY, noBuild, build bool
	var env []string
	var entrypoint string
	cmd := &cobra.Command{
		Use:   "run [flags] SERVICE [CMD...]",
		Short: "Run a one-off command in a new machine of a service (its dependencies brought up first)",
		Long: `Run a one-off machine of SERVICE, PROJECT-SERVICE-run-RANDOM, with CMD
instead of the service's command, after bringing up what the service
depends on. It does not publish the service's ports unless
--service-ports. The output streams here and ferry exits with the
command's status; --rm removes the machine afterwards.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			plan, c, err := f.plan(ctx, g)
			if err != nil {
				return err
			}
			o.Service = args[0]
			if len(args) > 1 {
				o.Cmd = args[1:]
			}
			if entrypoint != "" {
				if o.Entrypoint, err = shellwords.Parse(entrypoint); err != nil {
					return err
				}
			}
			if o.Env, err = keyValues("--env", env, true); err != nil {
				return err
			}
			if !noBuild {
				if err := composeBuild(ctx, g, c, plan, composeBuildOptions{services: args[:1], onlyMissing: !build}); err != nil {
					return err
				}
			}
			interactive := !detach && !noTTY && term.IsTerminal(int(os.Stdin.Fd()))
			o.TTY = interactive
			req, err := compose.PrepareRun(ctx, c, plan, o)
			if err != nil {
				return err
			}
			rf := runFlags{app: plan.Project, rm: rm, detach: detach, interactive: interactive, tty: interactive, stopTimeout: 10 * time.Second}
			req.Config.AutoDestroy = rm && detach
			return runMachine(ctx, g, c, rf, req)
		},
	}
	fl := cmd.Flags()
	fl.SetInterspersed(false)
	fl.BoolVar(&rm, "rm", false, "remove the machine when it exits")
	fl.BoolVarP(&detach, "detach", "d", false, "run in the background and print the machine ID")
	fl.BoolVarP(&noTTY, "no-TTY", "T", false, "no terminal (the default when stdin is not one)")
	fl.StringVar(&o.Name, "name", "", "name of the machine")
	fl.StringArrayVarP(&env, "env", "e", nil, "set an environment variable (KEY=VALUE)")
	fl.StringVar(&entrypoint, "entrypoint", "", "override the entrypoint")
	fl.StringVarP(&o.User, "user", "u", "", "user to run as")
	fl.StringVarP(&o.WorkingDir, "workdir", "w", "", "working directory")
	fl.BoolVar(&o.ServicePorts, "service-ports", false, "publish the service's ports")
	fl.BoolVar(&o.NoDeps, "no-deps", false, "do not start the services it depends on")
	fl.BoolVar(&build, "build", false, "build the service's image first")
	fl.BoolVar(&noBuild, "no-build", false, "do not build the image, even a missing one")
	return cmd
}
