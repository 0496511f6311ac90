// Package cli holds ferry's command line: one file per verb, each turning
// flags into a call on the daemon's API client (or, for daemon and registry,
// into starting a server). Nothing here holds logic a library should own.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/spf13/cobra"

	"github.com/ferryvm/ferry/internal/api"
	"github.com/ferryvm/ferry/internal/errdefs"
	"github.com/ferryvm/ferry/internal/paths"
)

// globals are the flags every verb shares.
type globals struct {
	host  string // daemon address: unix:///path or tcp://host:port
	token string // bearer token for a TCP daemon
	debug bool
	out   io.Writer
	err   io.Writer
}

// exitError carries a specific exit status out of a verb (docker run
// exits with the entrypoint's status).
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// daemonSays reports whether err is an error reply of the daemon of the
// given errdefs kind (not a local failure that wraps the same kind, such
// as a daemon that does not answer).
func daemonSays(err, kind error) bool {
	var ae *api.Error
	return errors.As(err, &ae) && errors.Is(ae, kind)
}

// Exit statuses of the CLI (docs/cli.md): verbs that run a process (run
// in the foreground, exec, attach, start -a) exit with its status instead.
const (
	exitFailure  = 1 // anything else
	exitUsage    = 2 // invalid arguments: bad flags, values or argument counts
	exitNotFound = 3 // no such machine, image, app, …
)

// Main runs the CLI with args and returns the process exit code.
func Main(ctx context.Context, args []string) int {
	g := &globals{out: os.Stdout, err: os.Stderr}
	root := newRoot(g)
	root.SetArgs(args)
	if _, _, err := root.Find(args); err != nil { // an unknown verb
		fmt.Fprintln(g.err, "ferry:", err)
		return exitUsage
	}
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	var ee exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	var se silentError
	if !errors.As(err, &se) { // a silentError was printed already
		fmt.Fprintln(g.err, "ferry:", err)
	}
	return exitCode(err)
}

// exitCode maps an error's errdefs kind to the exit status.
func exitCode(err error) int {
	switch {
	case errors.Is(err, errdefs.ErrNotFound):
		return exitNotFound
	case errors.Is(err, errdefs.ErrInvalidArgument):
		return exitUsage
	}
	return exitFailure
}

// usageErrors makes cobra's own complaints (unknown flags and commands,
// wrong argument counts) invalid-argument errors, so they exit 2 like
// every other bad input.
func usageErrors(c *cobra.Command) {
	c.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return fmt.Errorf("%w: %w", err, errdefs.ErrInvalidArgument)
	})
	if args := c.Args; args != nil {
		c.Args = func(cmd *cobra.Command, a []string) error {
			if err := args(cmd, a); err != nil {
				return fmt.Errorf("%w: %w", err, errdefs.ErrInvalidArgument)
			}
			return nil
		}
	}
	for _, sub := range c.Commands() {
		usageErrors(sub)
	}
}

func newRoot(g *globals) *cobra.Command {
	root := &cobra.Command{
		Use:           "ferry",
		Short:         "Run OCI/Docker images as hardware-isolated micro-VMs",
		SilenceUsage:  true,
		SilenceErrors: true,
		// Each command parses the flags written before its subcommand
		// (`ferry compose -f FILE logs -f`: compose's -f is the file,
		// logs' is follow, as in docker compose).
		TraverseChildren: true,
		PersistentPreRun: func(cmd *cobra.Command, _ []string) {
			level := slog.LevelInfo
			if g.debug {
				level = slog.LevelDebug
			}
			slog.SetDefault(slog.New(slog.NewTextHandler(g.err, &slog.HandlerOptions{Level: level})))
		},
	}
	root.SetOut(g.out)
	root.SetErr(g.err)
	host := os.Getenv("FERRY_HOST")
	if host == "" {
		host = "unix://" + paths.DefaultSocket
	}
	pf := root.PersistentFlags()
	pf.StringVarP(&g.host, "host", "H", host, "daemon address (unix:///path or tcp://host:port); env FERRY_HOST")
	pf.StringVar(&g.token, "token", os.Getenv("FERRY_TOKEN"), "bearer token for a TCP daemon; env FERRY_TOKEN")
	pf.BoolVar(&g.debug, "debug", false, "debug logging")

	// One line per verb; each lives in its own file.
	root.AddCommand(
		newVersionCmd(g),
		newRegistryCmd(g),
		newDaemonCmd(g),
		newControlPlaneCmd(g),
		newBuildCmd(g), newBuilderCmd(g), newPullCmd(g), newPushCmd(g), newImagesCmd(g), newImageCmd(g), newTagCmd(g), newRmiCmd(g),
		newLoadCmd(g), newSaveCmd(g), newLoginCmd(g), newLogoutCmd(g),
		newRunCmd(g), newCreateCmd(g), newPsCmd(g), newStopCmd(g), newStartCmd(g), newRestartCmd(g), newKillCmd(g), newRmCmd(g), newLogsCmd(g), newExecCmd(g), newAttachCmd(g), newInspectCmd(g), newWaitCmd(g), newEventsCmd(g), newRenameCmd(g), newStatsCmd(g), newMachineCmd(g), newScaleCmd(g), newPortCmd(g),
		newNetworkCmd(g),
		newVolumeCmd(g),
		newSystemCmd(g),
		newComposeCmd(g),
	)
	usageErrors(root)
	return root
}
