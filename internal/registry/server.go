package registry

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"sync"

	"github.com/distribution/distribution/v3"
	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/handlers"
	"github.com/distribution/distribution/v3/registry/storage"
	"github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/distribution/distribution/v3/registry/storage/driver/factory"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/filesystem" // the default driver
	_ "github.com/distribution/distribution/v3/registry/storage/driver/inmemory"   // tests
	_ "github.com/distribution/distribution/v3/registry/storage/driver/s3-aws"     // S3-compatible storage by config

	"github.com/ferryvm/ferry/internal/registry/auth"
	"github.com/ferryvm/ferry/internal/registry/store"
)

// Server is a running registry: the embedded distribution app, the
// metadata store and the middleware around them. Handler serves it.
type Server struct {
	cfg     Config
	log     *slog.Logger
	store   *store.Store
	ownsDB  bool
	app     http.Handler // distribution's *handlers.App (a stub in benchmarks)
	appDown func() error
	driver  driver.StorageDriver
	reg     distribution.Namespace // for referrers and catalog bookkeeping
	iss     *auth.Issuer
	key     stateKey
	metrics *metrics
	touches *toucher
	quotas  *quotas
	tlsLeaf *x509.Certificate // set by Serve under TLS (the realm's host check)
	tokens  *tokenCache
	claims  *claimsCache
	handler http.Handler
	gcStop  context.CancelFunc // stops gcLoop (Config.GCInterval)
	gcDone  chan struct{}
	closeMu sync.Once
}

// Option configures New.
type Option func(*options)

type options struct {
	log   *slog.Logger
	store *store.Store
}

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithStore uses an already open store instead of opening cfg.DB (the
// caller keeps ownership).
func WithStore(s *store.Store) Option { return func(o *options) { o.store = s } }

// New opens the store, builds the distribution app and the middleware.
func New(ctx context.Context, cfg Config, opts ...Option) (*Server, error) {
	o := options{log: slog.Default()}
	for _, fn := range opts {
		fn(&o)
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: o.log, store: o.store}
	if s.store == nil {
		if s.store, err = store.Open(ctx, cfg.DB); err != nil {
			return nil, err
		}
		s.ownsDB = true
	}
	secret := cfg.Secret
	if secret == "" {
		if secret, err = s.store.Setting(ctx, "http_secret", func() string { return randomSecret() }); err != nil {
			s.closeDB()
			return nil, err
		}
	}
	s.key = stateKey(secret)
	s.iss = auth.NewIssuer([]byte(secret), cfg.Service, auth.WithTTL(cfg.TokenTTL))

	dc := s.distributionConfig(secret)
	st := dc.Storage
	if s.driver, err = factory.Create(ctx, st.Type(), st.Parameters()); err != nil {
		s.closeDB()
		return nil, fmt.Errorf("registry storage %s: %w", st.Type(), err)
	}
	if s.reg, err = storage.NewRegistry(ctx, s.driver, storage.EnableDelete); err != nil {
		s.closeDB()
		return nil, fmt.Errorf("registry storage: %w", err)
	}
	app, err := newApp(ctx, dc)
	if err != nil {
		s.closeDB()
		return nil, err
	}
	s.app, s.appDown = app, app.Shutdown
	s.metrics = newMetrics(s.log)
	s.touches = newToucher(s.store, s.log)
	s.quotas = newQuotas(s.store, cfg.Limits)
	s.tokens = newTokenCache(tokenCacheTTL)
	s.claims = newClaimsCache()
	s.handler = s.routes()
	if cfg.GCInterval > 0 {
		var gctx context.Context
		gctx, s.gcStop = context.WithCancel(context.WithoutCancel(ctx))
		s.gcDone = make(chan struct{})
		go s.gcLoop(gctx, s.gcDone)
	}
	return s, nil
}

func randomSecret() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// newApp builds distribution's app; NewApp panics on bad configuration,
// which becomes an error here.
func newApp(ctx context.Context, dc *configuration.Configuration) (app *handlers.App, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("registry: distribution app: %v", r)
		}
	}()
	return handlers.NewApp(ctx, dc), nil
}

func (s *Server) distributionConfig(secret string) *configuration.Configuration {
	dc := &configuration.Configuration{}
	dc.Version = configuration.MajorMinorVersion(0, 1)
	dc.Storage = s.cfg.distributionStorage()
	dc.HTTP.Secret = secret
	dc.HTTP.Headers = http.Header{"X-Content-Type-Options": []string{"nosniff"}}
	// Location headers are relative: distribution would otherwise build
	// them from Host and X-Forwarded-* headers, which the client chooses.
	dc.HTTP.RelativeURLs = true
	dc.HTTP.Debug.Prometheus.Enabled = s.cfg.DistributionMetrics
	// Non-distributable layers name http(s) URLs; distribution's default
	// (validation on, no allow list) refuses every URL with a 500.
	// distribution never fetches them, so allowing them opens nothing.
	dc.Validation.Manifests.URLs.Allow = []string{`^https?://`}
	// Index children are checked by the middleware (missingIndexChild),
	// which also resolves sha512 children.
	dc.Validation.Manifests.Indexes.Platforms = "none"
	dc.Log.AccessLog.Disabled = true
	dc.Log.Level = "warn" // distribution logs through logrus' standard logger; the CLI sets its level
	return dc
}

// Handler is the registry's HTTP handler: /v2/..., /token, /healthz, and
// /metrics when Config.MetricsToken is set (bearer only) and
// Config.MetricsAddr is not.
func (s *Server) Handler() http.Handler { return s.handler }

// MetricsHandler serves the Prometheus metrics without authentication,
// for a listener of their own (Config.MetricsAddr).
func (s *Server) MetricsHandler() http.Handler { return s.metrics.handler() }

// Store is the metadata store (orgs and tokens).
func (s *Server) Store() *store.Store { return s.store }

// Config is the effective configuration (defaults filled in).
func (s *Server) Config() Config { return s.cfg }

// Close stops background work and closes what New opened.
func (s *Server) Close() error {
	var err error
	s.closeMu.Do(func() {
		if s.gcStop != nil {
			s.gcStop()
			<-s.gcDone
		}
		s.touches.close()
		err = s.appDown()
		s.closeDB()
	})
	return err
}

func (s *Server) closeDB() {
	if s.ownsDB {
		_ = s.store.Close()
	}
}
