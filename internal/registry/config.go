package registry

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/distribution/distribution/v3/configuration"
	"go.yaml.in/yaml/v2"

	"github.com/ferryvm/ferry/internal/errdefs"
)

// Config is the registry's configuration. The zero value plus Root is a
// working single-host registry: blobs under Root, metadata in
// Root/registry.db.
type Config struct {
	// Addr is the listen address (default 127.0.0.1:5000).
	Addr string `yaml:"addr"`
	// Root is the data directory: filesystem storage (unless Storage says
	// otherwise) and the default SQLite database.
	Root string `yaml:"root"`
	// DB is the metadata database: a postgres:// URL or a SQLite path
	// (default Root/registry.db).
	DB string `yaml:"db"`
	// Storage is distribution's storage section, verbatim (e.g. an "s3"
	// driver with its parameters). Empty: filesystem under Root/storage.
	Storage configuration.Storage `yaml:"storage,omitempty"`
	// BlobRedirect answers blob GETs and HEADs with a 307 to a presigned
	// URL of the storage (S3: valid 20 minutes) instead of serving the
	// bytes through the registry. Clients must reach the storage endpoint.
	// Ignored by drivers that cannot presign (filesystem); a "redirect"
	// key in Storage, when present, wins.
	BlobRedirect bool `yaml:"blob_redirect,omitempty"`
	// GCInterval runs gc in the server this often (0: never; run `ferry
	// registry gc` instead). Replicas sharing a Postgres take turns: a run
	// holds an advisory lock, and a replica finding it held skips that run.
	GCInterval time.Duration `yaml:"gc_interval,omitempty"`
	// TLS serves HTTPS with this certificate and key (PEM files).
	TLS TLSConfig `yaml:"tls,omitempty"`
	// Secret is the HTTP secret that signs upload state and keys the
	// token signer. Replicas must share it. Empty: a random secret kept in
	// the database, so replicas sharing a Postgres share it too.
	Secret string `yaml:"secret,omitempty"`
	// Service is the token audience and challenge service (default
	// "ferry-registry").
	Service string `yaml:"service,omitempty"`
	// Realm is the token endpoint URL put in challenges. Empty: the
	// address the client connected to (the server's own, never a header),
	// plus /token; set it when clients reach the server by another name.
	Realm string `yaml:"realm,omitempty"`
	// TokenTTL is how long minted JWTs live (default 5m).
	TokenTTL time.Duration `yaml:"token_ttl,omitempty"`
	// GCGrace is how recent a blob upload or link must be for gc to keep
	// an unreferenced blob (default 1h).
	GCGrace time.Duration `yaml:"gc_grace,omitempty"`
	// MetricsAddr serves /metrics on a listener of its own (bind it to a
	// private interface); the main listener then does not serve it.
	MetricsAddr string `yaml:"metrics_addr,omitempty"`
	// MetricsToken is the bearer token /metrics on the main listener
	// requires. With neither set, /metrics is not served.
	MetricsToken string `yaml:"metrics_token,omitempty"`
	// Limits bound what one org or client can make the server spend.
	Limits Limits `yaml:"limits,omitempty"`
	// DistributionMetrics turns on distribution's own per-route Prometheus
	// metrics (registered globally: one registry per process).
	DistributionMetrics bool `yaml:"distribution_metrics,omitempty"`
}

// TLSConfig names a certificate and key.
type TLSConfig struct {
	Certificate string `yaml:"certificate,omitempty"`
	Key         string `yaml:"key,omitempty"`
}

// LoadConfig reads a YAML config file.
func LoadConfig(path string) (Config, error) {
	var c Config
	b, err := os.ReadFile(path)
	if err != nil {
		return c, fmt.Errorf("registry config: %w", err)
	}
	if err := yaml.UnmarshalStrict(b, &c); err != nil {
		return c, fmt.Errorf("registry config %s: %w: %w", path, err, errdefs.ErrInvalidArgument)
	}
	return c, nil
}

// withDefaults fills in defaults and validates.
func (c Config) withDefaults() (Config, error) {
	if c.Addr == "" {
		c.Addr = "127.0.0.1:5000"
	}
	if c.Root == "" && (c.DB == "" || len(c.Storage) == 0) {
		return c, fmt.Errorf("registry: a root directory is required (or both db and storage): %w", errdefs.ErrInvalidArgument)
	}
	if c.DB == "" {
		c.DB = filepath.Join(c.Root, "registry.db")
	}
	if c.Service == "" {
		c.Service = "ferry-registry"
	}
	if c.TokenTTL == 0 {
		c.TokenTTL = 5 * time.Minute
	}
	if c.GCGrace == 0 {
		c.GCGrace = time.Hour
	}
	c.Limits = c.Limits.withDefaults()
	if (c.TLS.Certificate == "") != (c.TLS.Key == "") {
		return c, fmt.Errorf("registry: tls needs both certificate and key: %w", errdefs.ErrInvalidArgument)
	}
	return c, nil
}

// distributionStorage is the storage section handed to distribution:
// Storage or filesystem under Root, with deletes enabled (the OCI API
// needs them). No blob descriptor cache by default: gc runs beside the
// server, and a cache would keep answering for blobs gc removed.
func (c Config) distributionStorage() configuration.Storage {
	st := configuration.Storage{}
	for k, v := range c.Storage {
		st[k] = v
	}
	if st.Type() == "" {
		st["filesystem"] = configuration.Parameters{"rootdirectory": filepath.Join(c.Root, "storage")}
	}
	if _, ok := st["redirect"]; !ok {
		st["redirect"] = configuration.Parameters{"disable": !c.BlobRedirect}
	}
	if _, ok := st["delete"]; !ok {
		st["delete"] = configuration.Parameters{"enabled": true}
	}
	if _, ok := st["maintenance"]; !ok {
		// Abandoned upload sessions hold their bytes until purged; their
		// age is the one the quota counts them for.
		st["maintenance"] = configuration.Parameters{"uploadpurging": map[any]any{
			"enabled": true, "age": c.Limits.UploadMaxAge.String(), "interval": "1h", "dryrun": false,
		}}
	}
	return st
}

// nowMinus is the start of a window of length d ending now.
func (c Config) nowMinus(d time.Duration) time.Time { return time.Now().Add(-d) }
