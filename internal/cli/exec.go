package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/ferryvm/ferry/internal/api"
	"github.com/ferryvm/ferry/internal/api/types"
	"github.com/ferryvm/ferry/internal/guest"
)

func newExecCmd(g *globals) *cobra.Command {
	var app, user, workdir string
	var env []string
	var interactive, tty bool
	cmd := &cobra.Command{
		Use:   "exec [-it] MACHINE CMD...",
		Short: "Run a command in a running machine",
		Args:  cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.apiClient()
			if err != nil {
				return err
			}
			req := types.ExecRequest{Cmd: args[1:], Env: env, User: user, WorkingDir: workdir, TTY: tty}
			code, err := execAttached(cmd.Context(), g, c, app, args[0], req, interactive)
			if err != nil {
				return err
			}
			if code != 0 {
				return exitError{code: code}
			}
			return nil
		},
	}
	appFlag(cmd, &app)
	f := cmd.Flags()
	f.SetInterspersed(false)
	f.BoolVarP(&interactive, "interactive", "i", false, "attach stdin")
	f.BoolVarP(&tty, "tty", "t", false, "allocate a terminal")
	f.StringArrayVarP(&env, "env", "e", nil, "set an environment variable (KEY=VALUE)")
	f.StringVarP(&user, "user", "u", "", "user to run as")
	f.StringVarP(&workdir, "workdir", "w", "", "working directory")
	return cmd
}

// execAttached runs req in a machine with this terminal attached: with a
// tty, the local terminal goes raw and its size follows SIGWINCH.
func execAttached(ctx context.Context, g *globals, c *api.Client, app, id string, req types.ExecRequest, interactive bool) (int, error) {
	stdio := guest.ExecIO{Stdout: g.out, Stderr: g.err}
	if interactive {
		stdio.Stdin = os.Stdin
	}
	if req.TTY {
		fd := int(os.Stdin.Fd())
		if term.IsTerminal(fd) {
			if w, h, err := term.GetSize(fd); err == nil {
				req.Cols, req.Rows = w, h
			}
			if interactive {
				old, err := term.MakeRaw(fd)
				if err != nil {
					return 0, fmt.Errorf("terminal raw mode: %w", err)
				}
				defer func() { _ = term.Restore(fd, old) }()
			}
			resize := make(chan guest.ExecEvent, 1)
			winch := make(chan os.Signal, 1)
			signal.Notify(winch, syscall.SIGWINCH)
			defer signal.Stop(winch)
			go func() {
				for range winch {
					if w, h, err := term.GetSize(fd); err == nil {
						select {
						case resize <- guest.ExecEvent{Rows: uint16(h), Cols: uint16(w)}:
						default:
						}
					}
				}
			}()
			stdio.Events = resize
		}
		// In raw mode Ctrl-C is a byte for the guest, not a signal here.
		signal.Ignore(os.Interrupt)
		defer signal.Reset(os.Interrupt)
		ctx = context.WithoutCancel(ctx)
	}
	if stdio.Stdin != nil {
		stdio.Stdin = io.Reader(os.Stdin)
	}
	return c.ExecMachine(ctx, app, id, req, stdio)
}
