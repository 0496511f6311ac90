package cli

import (
	"log/slog"
	"os"

	"github.com/spf13/cobra"

	"github.com/ferryvm/ferry/internal/daemon"
	"github.com/ferryvm/ferry/internal/paths"
)

func newDaemonCmd(g *globals) *cobra.Command {
	cfg := daemon.Config{}
	var jsonLogs bool
	warm := true
	cmd := &cobra.Command{
		Use:   "daemon",
		Short: "Run the ferry host daemon (image cache, machines, networking)",
		Long: `Run the ferry host daemon in the foreground. It owns one data directory
(--root) and serves the API on a unix socket (--socket), and on TCP when
--api-addr is given (a bearer token from --api-token or FERRY_API_TOKEN is then
required). SIGTERM or SIGINT shut it down gracefully.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg.Logger = daemonLogger(g, jsonLogs)
			cfg.Version = Version
			cfg.ColdBoots = !warm
			return daemon.Run(cmd.Context(), cfg)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Root, "root", paths.DefaultRoot, "data directory (image cache, machines, state)")
	f.StringVar(&cfg.Socket, "socket", paths.DefaultSocket, "unix socket to serve the API on")
	f.StringVarP(&cfg.SocketGroup, "group", "G", "", "group to own the socket (its members may use ferry without root)")
	f.StringVar(&cfg.APIAddr, "api-addr", "", "also serve the API on this TCP address (needs --api-token)")
	f.StringArrayVar(&cfg.RemoteBindPaths, "allow-remote-bind", nil, "host directory TCP API clients may bind-mount (repeatable; local clients may bind any)")
	f.StringVar(&cfg.APIToken, "api-token", os.Getenv("FERRY_API_TOKEN"), "bearer token required on --api-addr; env FERRY_API_TOKEN")
	f.StringVar(&cfg.DockerSocket, "docker-socket", "", "unix socket of the Docker Engine API (default: docker.sock beside --socket; none: off)")
	f.StringVar(&cfg.MirrorAddr, "mirror-addr", "127.0.0.1:5055", "serve the host-local registry mirror (pushes land in the image cache) on this TCP address and its port on each network's gateway (\"\": off)")
	f.StringArrayVar(&cfg.MirrorUpstreams, "mirror-upstream", nil, "mirror name mapping PREFIX=UPSTREAM (repeatable): an image pushed to the mirror as PREFIX/rest:tag is stored as UPSTREAM/rest:tag and pushed there in the background; HOST alone means HOST=HOST")
	f.BoolVar(&cfg.MirrorPrepare, "mirror-prepare", true, "build the root filesystem of each image pushed to the mirror in the background, so its first machine only boots")
	f.StringVar(&cfg.DockerAddr, "docker-addr", "", "also serve the Docker Engine API on this TCP address (needs --api-token or the --docker-tls* files)")
	f.StringVar(&cfg.DockerTLS.CA, "docker-tlscacert", "", "--docker-addr over TLS: CA that signs the clients' certificates (PEM)")
	f.StringVar(&cfg.DockerTLS.Cert, "docker-tlscert", "", "--docker-addr over TLS: the server's certificate (PEM)")
	f.StringVar(&cfg.DockerTLS.Key, "docker-tlskey", "", "--docker-addr over TLS: the server's key (PEM)")
	f.StringVar(&cfg.NetNS, "netns", "", "run the network side inside this named network namespace")
	f.StringVar(&cfg.Subnet, "subnet", "", "the default network's subnet (CIDR, IPv4; default 10.213.0.0/22)")
	f.BoolVar(&cfg.AllowLinkLocal, "allow-link-local", false, "let guests reach 169.254.0.0/16 (cloud metadata) through the host")
	f.StringVar(&cfg.VMM, "vmm", "", "VMM driver: qemu or firecracker (default: the best available)")
	f.BoolVar(&cfg.Prewarm, "prewarm", true, "with warm starts, build the default machine's template when the daemon starts, in the background")
	f.BoolVar(&cfg.Spares, "spares", true, "with warm starts, keep one restored machine of each shape started warm ready for the next machine of it")
	f.BoolVar(&warm, "warm-starts", warm, "start machines by restoring a saved guest of their shape instead of booting (QEMU; false: boot every machine; docs/warm-starts.md)")
	f.StringVar(&cfg.VolumeKeyFile, "volume-key-file", "", "wrap the keys of new volumes with this secret file (0600; e.g. head -c 32 /dev/urandom)")
	f.StringSliceVar(&cfg.InsecureRegistries, "insecure-registry", nil, "registry (host[:port]) to reach over plain HTTP (repeatable)")
	f.StringVar(&cfg.Join, "join", "", "join the control plane at this URL (register capacity, renew a lease; needs --api-addr; docs/scale-out.md)")
	f.StringVar(&cfg.JoinName, "join-name", "", "this host's name at the control plane (its HOST in `ferry ps`; default: the hostname)")
	f.StringVar(&cfg.JoinToken, "join-token", os.Getenv("FERRY_CONTROLPLANE_TOKEN"), "the control plane's token; env FERRY_CONTROLPLANE_TOKEN")
	f.StringVar(&cfg.Underlay, "underlay", "", "with --join: this host's address for cross-host networks (VXLAN); default the address it reaches the control plane from")
	f.BoolVar(&jsonLogs, "log-json", false, "write logs as JSON lines")
	layerLimitFlags(f, &cfg.LayerLimits)
	return cmd
}

// daemonLogger logs to stderr as text (or JSON), at debug level with --debug.
func daemonLogger(g *globals, jsonLogs bool) *slog.Logger {
	opts := &slog.HandlerOptions{Level: slog.LevelInfo}
	if g.debug {
		opts.Level = slog.LevelDebug
	}
	if jsonLogs {
		return slog.New(slog.NewJSONHandler(g.err, opts))
	}
	return slog.New(slog.NewTextHandler(g.err, opts))
}
