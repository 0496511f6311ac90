package cli

import (
	"os"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"

	"github.com/ferryvm/ferry/internal/registry"
)

func newRegistryServeCmd(g *globals, rf *registryFlags) *cobra.Command {
	var addr, cert, key, realm, metricsAddr string
	var lim registry.Limits
	var blobRedirect bool
	var gcInterval time.Duration
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
			if realm != "" {
				cfg.Realm = realm
			}
			if metricsAddr != "" {
				cfg.MetricsAddr = metricsAddr
			}
			f := cmd.Flags()
			if f.Changed("blob-redirect") {
				cfg.BlobRedirect = blobRedirect
			}
			if f.Changed("gc-interval") {
				cfg.GCInterval = gcInterval
			}
			if f.Changed("org-quota") {
				cfg.Limits.OrgStorage = lim.OrgStorage
			}
			if f.Changed("max-upload-sessions") {
				cfg.Limits.UploadSessions = lim.UploadSessions
			}
			if f.Changed("body-min-rate") {
				cfg.Limits.BodyMinRate = lim.BodyMinRate
			}
			if f.Changed("read-header-timeout") {
				cfg.Limits.ReadHeaderTimeout = lim.ReadHeaderTimeout
			}
			if f.Changed("idle-timeout") {
				cfg.Limits.IdleTimeout = lim.IdleTimeout
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
	f.StringVar(&realm, "realm", "", "token endpoint URL for challenges (default: the address the client connected to, + /token)")
	f.StringVar(&metricsAddr, "metrics-addr", "", "serve /metrics unauthenticated on this address only (e.g. 127.0.0.1:5001)")
	f.BoolVar(&blobRedirect, "blob-redirect", false, "answer blob GETs with a redirect to a presigned storage (S3) URL instead of serving the bytes")
	f.DurationVar(&gcInterval, "gc-interval", 0, "run gc in the server this often; replicas on one Postgres take turns (default: never)")
	f.Var(&lim.OrgStorage, "org-quota", "default storage quota per org, e.g. 100GiB or unlimited (default 100GiB)")
	f.IntVar(&lim.UploadSessions, "max-upload-sessions", 0, "open upload sessions per org, -1 for no cap (default 64)")
	f.Var(&lim.BodyMinRate, "body-min-rate", "slowest average rate a request body or response may move, per second, after 10s; unlimited turns it off (default 1KiB)")
	f.DurationVar(&lim.ReadHeaderTimeout, "read-header-timeout", 0, "time to read a request's headers (default 10s)")
	f.DurationVar(&lim.IdleTimeout, "idle-timeout", 0, "idle keep-alive connection timeout (default 2m)")
	return cmd
}
