package cli

import (
	"os"

	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"

	"github.com/ferryvm/ferry/internal/registry"
)

func newRegistryServeCmd(g *globals, rf *registryFlags) *cobra.Command {
	var addr, cert, key string
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve the registry (OCI distribution API, token endpoint, /healthz, /metrics)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := rf.loadConfig(cmd)
			if err != nil {
				return err
			}
			if addr != "" {
				cfg.Addr = addr
			}
			if cert != "" {
				cfg.TLS = registry.TLSConfig{Certificate: cert, Key: key}
			}
			if err := os.MkdirAll(cfg.Root, 0o700); err != nil {
				return err
			}
			cfg.DistributionMetrics = true
			// distribution logs every 4xx at error level through logrus;
			// ferry logs failures (5xx) itself, so keep logrus for --debug.
			logrus.SetLevel(logrus.FatalLevel)
			if g.debug {
				logrus.SetLevel(logrus.DebugLevel)
			}
			srv, err := registry.New(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			defer func() { _ = srv.Close() }()
			return srv.ListenAndServe(cmd.Context())
		},
	}
	f := cmd.Flags()
	f.StringVar(&addr, "addr", "", "listen address (default 127.0.0.1:5000)")
	f.StringVar(&cert, "tls-cert", "", "serve HTTPS with this certificate (PEM)")
	f.StringVar(&key, "tls-key", "", "private key of --tls-cert (PEM)")
	return cmd
}
