package cli

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/ferryvm/ferry/internal/api/types"
	"github.com/ferryvm/ferry/internal/compose"
	"github.com/ferryvm/ferry/internal/errdefs"
)

func newComposeExecCmd(g *globals, f *composeFlags) *cobra.Command {
	var noTTY bool
	var index int
	var user, workdir string
	var env []string
	cmd := &cobra.Command{
		Use:   "exec [-T] [--index N] SERVICE CMD...",
		Short: "Run a command in a running replica of a service",
		Args:  cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, app, ms, err := f.machines(cmd.Context(), g, args[:1])
			if err != nil {
				return err
			}
			var id string
			for _, m := range ms {
				if m.Config.Metadata[compose.LabelNumber] == fmt.Sprint(index) && m.State == types.StateStarted {
					id = m.ID
				}
			}
			if id == "" {
				return fmt.Errorf("service %s has no running replica %d (ferry compose up -d starts it): %w", args[0], index, errdefs.ErrNotFound)
			}
			tty := !noTTY && term.IsTerminal(int(os.Stdin.Fd()))
			req := types.ExecRequest{Cmd: args[1:], Env: env, User: user, WorkingDir: workdir, TTY: tty}
			code, err := execAttached(cmd.Context(), g, c, app, id, req, tty)
			if err != nil {
				return err
			}
			if code != 0 {
				return exitError{code: code}
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.SetInterspersed(false)
	fl.BoolVarP(&noTTY, "no-TTY", "T", false, "no terminal (the default when stdin is not one)")
	fl.IntVar(&index, "index", 1, "which replica")
	fl.StringArrayVarP(&env, "env", "e", nil, "set an environment variable (KEY=VALUE)")
	fl.StringVarP(&user, "user", "u", "", "user to run as")
	fl.StringVarP(&workdir, "workdir", "w", "", "working directory")
	return cmd
}
