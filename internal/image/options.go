package image

import (
	"log/slog"
	"net/http"
	"runtime"

	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Option configures a Store.
type Option func(*options)

type options struct {
	logger    *slog.Logger
	insecure  []string
	keychain  authn.Keychain
	transport http.RoundTripper
	jobs      int
	platform  v1.Platform
	noSync    bool
}

func defaultOptions() options {
	return options{
		logger:    slog.New(slog.DiscardHandler),
		keychain:  authn.DefaultKeychain,
		transport: http.DefaultTransport,
		jobs:      4,
		platform:  HostPlatform(),
	}
}

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithInsecureRegistries names registries (host or host:port) reached over
// plain HTTP, as Docker's --insecure-registry. Loopback registries
// (localhost, 127.0.0.0/8, ::1) are always plain HTTP.
func WithInsecureRegistries(hosts ...string) Option {
	return func(o *options) { o.insecure = append(o.insecure, hosts...) }
}

// WithKeychain sets where registry credentials come from (default:
// authn.DefaultKeychain, i.e. ~/.docker/config.json and credential helpers).
func WithKeychain(k authn.Keychain) Option { return func(o *options) { o.keychain = k } }

// WithTransport sets the HTTP transport used to reach registries.
func WithTransport(t http.RoundTripper) Option { return func(o *options) { o.transport = t } }

// WithJobs bounds how many blobs are fetched or pushed at once (default 4).
func WithJobs(n int) Option {
	return func(o *options) {
		if n > 0 {
			o.jobs = n
		}
	}
}

// WithDefaultPlatform sets the platform chosen from a manifest list when a
// pull names none (default: the host's).
func WithDefaultPlatform(p v1.Platform) Option { return func(o *options) { o.platform = p } }

// WithoutFsync skips fsync of committed blobs: for benchmarks and tests on
// throwaway roots only; a crash may then leave a truncated blob.
func WithoutFsync() Option { return func(o *options) { o.noSync = true } }

// HostPlatform is the platform of the running binary (linux/amd64, …).
func HostPlatform() v1.Platform {
	p := v1.Platform{OS: "linux", Architecture: runtime.GOARCH}
	if runtime.GOARCH == "arm64" {
		p.Variant = "v8"
	}
	return p
}

// PullOption configures one Pull.
type PullOption func(*pullOptions)

type pullOptions struct {
	platform *v1.Platform
	progress ProgressFunc
	auth     authn.Authenticator
}

// PullPlatform selects the platform from a manifest list (default: the
// store's default platform).
func PullPlatform(p v1.Platform) PullOption { return func(o *pullOptions) { o.platform = &p } }

// PullProgress receives per-blob progress events.
func PullProgress(f ProgressFunc) PullOption { return func(o *pullOptions) { o.progress = f } }

// PullAuth uses these credentials instead of the store's keychain (for a
// daemon handed credentials by its client, like Docker's X-Registry-Auth).
func PullAuth(a authn.Authenticator) PullOption { return func(o *pullOptions) { o.auth = a } }

// PushOption configures one Push.
type PushOption func(*pushOptions)

type pushOptions struct {
	progress ProgressFunc
	auth     authn.Authenticator
}

// PushProgress receives per-blob progress events.
func PushProgress(f ProgressFunc) PushOption { return func(o *pushOptions) { o.progress = f } }

// PushAuth uses these credentials instead of the store's keychain.
func PushAuth(a authn.Authenticator) PushOption { return func(o *pushOptions) { o.auth = a } }
