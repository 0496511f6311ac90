package cli

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/ferryvm/ferry/internal/errdefs"
	"github.com/ferryvm/ferry/internal/image"
)

func newLoginCmd(g *globals) *cobra.Command {
	var user, password string
	var passwordStdin bool
	var insecure []string
	cmd := &cobra.Command{
		Use:   "login [-u USER] [--password-stdin] [SERVER]",
		Short: "Log in to a registry (stores credentials in ~/.docker/config.json, as docker login does)",
		Long: `Log in to a registry: the credentials are checked against the registry, then
stored in the Docker config file (DOCKER_CONFIG or ~/.docker/config.json) on
this machine. ferry pull and push read them there and hand them to the daemon
for that request. Without SERVER, Docker Hub.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			server := ""
			if len(args) == 1 {
				server = args[0]
			}
			in := bufio.NewReader(cmd.InOrStdin())
			var err error
			if user == "" {
				if user, err = prompt(g, cmd, in, "Username: "); err != nil {
					return err
				}
			}
			switch {
			case passwordStdin:
				if password != "" {
					return fmt.Errorf("--password and --password-stdin are mutually exclusive: %w", errdefs.ErrInvalidArgument)
				}
				b, err := io.ReadAll(in)
				if err != nil {
					return fmt.Errorf("read password from stdin: %w", err)
				}
				password = strings.TrimRight(string(b), "\r\n")
			case password == "":
				if password, err = readPassword(g, cmd); err != nil {
					return err
				}
			}
			if user == "" || password == "" {
				return fmt.Errorf("login: username and password are required: %w", errdefs.ErrInvalidArgument)
			}
			if err := image.Login(cmd.Context(), server, user, password, image.WithInsecureRegistries(insecure...)); err != nil {
				return err
			}
			_, err = fmt.Fprintln(g.out, "Login Succeeded")
			return err
		},
	}
	f := cmd.Flags()
	f.StringVarP(&user, "username", "u", "", "username")
	f.StringVarP(&password, "password", "p", "", "password (visible to other users of this machine; prefer --password-stdin)")
	f.BoolVar(&passwordStdin, "password-stdin", false, "read the password from stdin")
	f.StringSliceVar(&insecure, "insecure-registry", nil, "reach this registry (host[:port]) over plain HTTP")
	return cmd
}

// prompt asks for one line on a terminal; without one it fails with advice.
func prompt(g *globals, cmd *cobra.Command, in *bufio.Reader, question string) (string, error) {
	if !isTerminal(cmd.InOrStdin()) {
		return "", fmt.Errorf("login: no terminal to ask for the %s; pass -u USER and --password-stdin: %w",
			strings.ToLower(strings.TrimSuffix(question, ": ")), errdefs.ErrInvalidArgument)
	}
	fmt.Fprint(g.out, question)
	line, err := in.ReadString('\n')
	if err != nil && line == "" {
		return "", fmt.Errorf("login: read %s: %w", strings.TrimSuffix(question, ": "), err)
	}
	return strings.TrimSpace(line), nil
}

// readPassword reads a password from the terminal without echo.
func readPassword(g *globals, cmd *cobra.Command) (string, error) {
	f, ok := cmd.InOrStdin().(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) { //nolint:gosec // fds fit in int
		return "", fmt.Errorf("login: no terminal to ask for the password; pass --password-stdin: %w", errdefs.ErrInvalidArgument)
	}
	fmt.Fprint(g.out, "Password: ")
	b, err := term.ReadPassword(int(f.Fd())) //nolint:gosec // fds fit in int
	fmt.Fprintln(g.out)
	if err != nil {
		return "", fmt.Errorf("login: read password: %w", err)
	}
	return string(b), nil
}
