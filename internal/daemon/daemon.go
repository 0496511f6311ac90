// Package daemon is ferry's host agent (`ferry daemon`): it owns one data
// directory (the root: it takes the root's lock and opens its metadata
// database once), wires every service (images and rootfs, machines with
// their network, kernel assets and VMM drivers) onto one API server, and
// serves that API on a unix socket and optionally on TCP with a bearer token.
//
// It is wiring only. Each service plugs in with one small file holding a
// wire function (images.go, machines.go) listed in services below; the wire
// function constructs the service from the shared daemon state, registers
// its API routes and adds any closer. What is left beside constructors are
// thin adapters that turn API requests into package calls (imageAPI,
// rootfsAPI) and the VMM drivers into machine.Hypervisor (hypervisor); the
// behaviour itself lives in internal/image, rootfs, kernel, vmm, guest,
// network and machine (docs/architecture.md has the map).
package daemon

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"sync"

	"go.etcd.io/bbolt"

	"github.com/ferryvm/ferry/internal/api"
	"github.com/ferryvm/ferry/internal/build"
	"github.com/ferryvm/ferry/internal/dockerapi"
	"github.com/ferryvm/ferry/internal/errdefs"
	"github.com/ferryvm/ferry/internal/image"
	"github.com/ferryvm/ferry/internal/machine"
	"github.com/ferryvm/ferry/internal/mirror"
	"github.com/ferryvm/ferry/internal/network"
	"github.com/ferryvm/ferry/internal/paths"
	"github.com/ferryvm/ferry/internal/rootfs"
	"github.com/ferryvm/ferry/internal/rootfs/apply"
	"github.com/ferryvm/ferry/internal/volume"
)

// Config is what `ferry daemon` is started with.
type Config struct {
	Root   string // data directory (paths.DefaultRoot when empty)
	Socket string // unix socket of the API (paths.DefaultSocket when empty)
	// SocketGroup, when set, owns the socket (mode 0660), so its members
	// may use ferry without root, as Docker's "docker" group.
	SocketGroup string
	APIAddr     string // optional TCP address of the API ("127.0.0.1:7070")
	APIToken    string // bearer token required on APIAddr (mandatory with it)
	// DockerSocket is the unix socket of the Docker Engine API ("":
	// docker.sock beside Socket; "none": not served).
	DockerSocket string
	// DockerAddr is an optional TCP address of the Docker Engine API; it
	// requires APIToken, or TLS with client certificates (DockerTLS).
	DockerAddr string
	// MirrorAddr is the TCP address of the host-local registry mirror
	// (internal/mirror; "" = not served). Its port is also served on
	// each network's gateway.
	MirrorAddr string
	// MirrorUpstreams are the mirror's name mappings, PREFIX=UPSTREAM
	// (mirror.ParseUpstream): pushes under PREFIX are written back to
	// UPSTREAM.
	MirrorUpstreams []string
	// MirrorPrepare builds the rootfs base of each image pushed to the
	// mirror in the background, so its first machine only boots.
	MirrorPrepare bool
	// DockerTLS serves DockerAddr over TLS, requiring client certificates
	// signed by its CA (dockerd's --tlsverify).
	DockerTLS TLSFiles
	NetNS     string // named network namespace the network side runs in ("" = current)
	Subnet    string // machine subnet CIDR ("" = internal/network's default)
	// AllowLinkLocal lets guests reach 169.254.0.0/16 (a cloud's metadata
	// service) through the host.
	AllowLinkLocal bool
	VMM            string // VMM driver name ("qemu", "firecracker"; "" = default)
	// ColdBoots boots every machine instead of restoring it from the
	// warm-start template of its shape, the default (docs/warm-starts.md).
	ColdBoots bool
	// Prewarm builds the template of a default machine when the daemon
	// starts (in the background), so its first machine does not wait for
	// one (machine.Manager.Prewarm).
	Prewarm bool
	// Spares keeps one restored machine of each shape started warm (and,
	// with Prewarm, of the default shape) running and ready for the next
	// machine of it (machine.Options.Spares).
	Spares bool
	// VolumeKeyFile, when set, wraps the keys of new volumes (and unwraps
	// the keys it wrapped): volume.WrapKeyFromFile.
	VolumeKeyFile string
	// RemoteBindPaths are the host directories (and what is below them)
	// clients of the TCP API may bind-mount; local clients may bind any.
	RemoteBindPaths []string

	// InsecureRegistries are registries (host[:port]) reached over plain
	// HTTP, in addition to loopback ones.
	InsecureRegistries []string

	// Join is the control plane's URL (`--join`): the host registers
	// there and renews its lease (internal/controlplane). JoinToken is
	// the control plane's bearer token.
	Join, JoinToken string
	// Underlay is the host's address other hosts reach its cross-host
	// networks' VXLAN at ("" = the one its network namespace reaches the
	// control plane from).
	Underlay string
	// JoinName is the host's name at the control plane ("": the hostname).
	JoinName string

	// LayerLimits bound what an image's layers may cost a base build
	// (zero fields: apply's defaults).
	LayerLimits apply.Limits

	Version string       // ferry's version, as the Docker API reports it
	Logger  *slog.Logger // nil = slog.Default()
	// Ready, when set, is called once every listener is accepting.
	Ready func()
}

// daemon is the state shared by the wire functions of every service.
type daemon struct {
	cfg  Config
	root paths.Root
	log  *slog.Logger
	db   *bbolt.DB   // meta.db; each service keeps to its own buckets
	api  *api.Server // every service registers its routes here

	images  *image.Store    // set by wireImages
	rootfs  *rootfs.Manager // set by wireImages
	volumes *volume.Store   // set by wireVolumes
	// volumeAPI serves the Volumes API (set by wireVolumes); wireMachines
	// lets it grow volumes in running machines.
	volumeAPI *volumeService
	machines  *machine.Manager  // set by wireMachines
	network   *network.Service  // set by wireMachines
	builder   *build.Builder    // set by wireBuild
	writeBack *mirror.WriteBack // set by wireMirror (nil: no mirror)
	imageSvc  *imageAPI         // set by wireImages
	docker    *dockerapi.Server // set by wireDockerAPI (nil: not served)

	closers []func() error // run in reverse order on shutdown
}

// services are wired in order; later ones may use earlier ones' fields.
var services = []func(ctx context.Context, d *daemon) error{
	wireImages,
	wireVolumes,
	wireMachines,
	wireMirror,
	wireBuild,
	wireDockerAPI,
	wireJoin,
	wireOverlay, // overlay.go
}

// Run starts the daemon and blocks until ctx ends (SIGTERM/SIGINT in `ferry
// daemon`), then shuts down gracefully. It fails at once when another daemon
// owns the root.
func Run(ctx context.Context, cfg Config) (err error) {
	if err := cfg.validate(); err != nil {
		return err
	}
	d := &daemon{cfg: cfg, root: paths.Root(cfg.Root), log: cfg.Logger}
	defer func() { err = errors.Join(err, d.close()) }()
	if err := d.open(); err != nil {
		return err
	}
	d.api = api.NewServer(d.log)
	for _, wire := range services {
		if err := wire(ctx, d); err != nil {
			return err
		}
	}
	ls, err := d.listen()
	if err != nil {
		return err
	}
	return d.serve(ctx, ls)
}

func (c *Config) validate() error {
	if c.Root == "" {
		c.Root = paths.DefaultRoot
	}
	if c.Socket == "" {
		c.Socket = paths.DefaultSocket
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	switch c.DockerSocket {
	case "":
		c.DockerSocket = filepath.Join(filepath.Dir(c.Socket), "docker.sock")
	case "none":
		c.DockerSocket = ""
	}
	if err := c.DockerTLS.validate(); err != nil {
		return err
	}
	if c.DockerAddr != "" && c.APIToken == "" && !c.DockerTLS.set() {
		return fmt.Errorf("--docker-addr %s needs --api-token or --docker-tlscacert/--docker-tlscert/--docker-tlskey (the TCP Docker API is never served unauthenticated): %w", c.DockerAddr, errdefs.ErrInvalidArgument)
	}
	if c.APIAddr != "" && c.APIToken == "" {
		return fmt.Errorf("--api-addr %s needs --api-token (the TCP API is never served without a token): %w", c.APIAddr, errdefs.ErrInvalidArgument)
	}
	return nil
}

// serve answers API requests on every listener until ctx ends.
func (d *daemon) serve(ctx context.Context, ls []listener) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make([]error, len(ls))
	var wg sync.WaitGroup
	for i, l := range ls {
		wg.Go(func() {
			if l.docker {
				errs[i] = d.docker.Serve(ctx, l.Listener, l.token, l.tls)
			} else {
				errs[i] = d.api.Serve(ctx, l.Listener, l.token)
			}
			cancel() // one listener failing stops the daemon
		})
	}
	d.log.Info("ferry daemon ready", "root", d.cfg.Root, "socket", d.cfg.Socket, "api_addr", d.cfg.APIAddr, "docker_socket", d.cfg.DockerSocket)
	if d.cfg.Ready != nil {
		d.cfg.Ready()
	}
	<-ctx.Done()
	d.log.Info("ferry daemon shutting down")
	wg.Wait()
	return errors.Join(errs...)
}

// listener is one API endpoint with the token it requires ("" = none);
// docker marks the Docker Engine API's, tls its TLS (nil: plain).
type listener struct {
	net.Listener
	token  string
	docker bool
	tls    *tls.Config
}
