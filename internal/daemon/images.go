package daemon

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ferryvm/ferry/internal/api"
	"github.com/ferryvm/ferry/internal/errdefs"
	"github.com/ferryvm/ferry/internal/image"
	"github.com/ferryvm/ferry/internal/rootfs"
)

// wireImages opens the image cache and the rootfs built from it, and serves
// the image and rootfs APIs.
func wireImages(ctx context.Context, d *daemon) error {
	st, err := image.Open(ctx, d.root, d.db,
		image.WithLogger(d.log.With("svc", "image")),
		image.WithInsecureRegistries(d.cfg.InsecureRegistries...))
	if err != nil {
		return err
	}
	rfs, err := rootfs.New(ctx, d.db, d.root, st, rootfs.WithImages(st), rootfs.WithLogger(d.log.With("svc", "rootfs")),
		rootfs.WithLayerLimits(d.cfg.LayerLimits))
	if err != nil {
		return err
	}
	d.images, d.rootfs = st, rfs
	d.imageSvc = &imageAPI{st: st, rfs: rfs, log: d.log.With("svc", "image")}
	api.RegisterImages(d.api, d.imageSvc)
	registerRootfsAPI(d, rfs)
	return nil
}

// imageAPI adapts the image store to api.ImageService: API requests become
// image options, and what the user asked for is logged.
type imageAPI struct {
	st  *image.Store
	rfs *rootfs.Manager
	log *slog.Logger
}

var _ api.ImageService = (*imageAPI)(nil)

func (a *imageAPI) Pull(ctx context.Context, req api.PullRequest, progress image.ProgressFunc) (image.PullResult, error) {
	if err := a.st.CheckInsecure(req.Ref, req.InsecureRegistries); err != nil {
		return image.PullResult{}, err
	}
	opts := []image.PullOption{image.PullProgress(progress)}
	if req.Platform != "" {
		p, err := v1.ParsePlatform(req.Platform)
		if err != nil {
			return image.PullResult{}, fmt.Errorf("--platform %q: %w: %w", req.Platform, err, errdefs.ErrInvalidArgument)
		}
		opts = append(opts, image.PullPlatform(*p))
	}
	if auth := authenticator(req.Auth); auth != nil {
		opts = append(opts, image.PullAuth(auth))
	}
	start := time.Now()
	res, err := a.st.Pull(ctx, req.Ref, opts...)
	if err != nil {
		a.log.Info("pull failed", "ref", req.Ref, "caller_credentials", req.Auth != nil, "err", err)
		return image.PullResult{}, err
	}
	a.log.Info("pulled", "ref", res.Ref, "digest", res.Image.ID, "bytes_fetched", res.BytesFetched,
		"blobs_fetched", res.BlobsFetched, "blobs_cached", res.BlobsExisting, "caller_credentials", req.Auth != nil,
		"duration", time.Since(start).Round(time.Millisecond))
	return *res, nil
}

func (a *imageAPI) Push(ctx context.Context, req api.PushRequest, progress image.ProgressFunc) (api.PushResult, error) {
	if err := a.st.CheckInsecure(req.Ref, req.InsecureRegistries); err != nil {
		return api.PushResult{}, err
	}
	opts := []image.PushOption{image.PushProgress(progress)}
	if auth := authenticator(req.Auth); auth != nil {
		opts = append(opts, image.PushAuth(auth))
	}
	d, err := a.st.Push(ctx, req.Ref, "", opts...)
	if err != nil {
		a.log.Info("push failed", "ref", req.Ref, "err", err)
		return api.PushResult{}, err
	}
	a.log.Info("pushed", "ref", req.Ref, "digest", d)
	ref, err := image.CanonicalString(req.Ref)
	if err != nil {
		ref = req.Ref
	}
	return api.PushResult{Ref: ref, Digest: d.String()}, nil
}

func (a *imageAPI) List(ctx context.Context, all bool) ([]image.Summary, error) {
	list, err := a.st.List(ctx)
	if err != nil || all {
		return list, err
	}
	return slices.DeleteFunc(list, image.Summary.Dangling), nil
}

func (a *imageAPI) Inspect(ctx context.Context, ref string) (image.Details, error) {
	return deref(a.st.Inspect(ctx, ref))
}

func (a *imageAPI) Tag(ctx context.Context, src, dst string) error { return a.st.Tag(ctx, src, dst) }

func (a *imageAPI) Remove(ctx context.Context, ref string, force bool) (image.RemoveReport, error) {
	return deref(a.rfs.RemoveImage(ctx, ref, force))
}

func (a *imageAPI) Prune(ctx context.Context, all bool) (image.PruneReport, error) {
	return deref(a.rfs.PruneImages(ctx, all))
}

func deref[T any](v *T, err error) (T, error) {
	if err != nil || v == nil {
		var zero T
		return zero, err
	}
	return *v, nil
}

func (a *imageAPI) Load(ctx context.Context, r io.Reader) ([]image.Loaded, error) {
	return a.st.Load(ctx, r)
}

func (a *imageAPI) Save(ctx context.Context, w io.Writer, refs []string) error {
	return a.st.Save(ctx, w, refs)
}

func (a *imageAPI) Verify(ctx context.Context) (image.CheckReport, error) { return a.st.Check(ctx) }

func (a *imageAPI) Subscribe() (<-chan image.Event, func()) { return a.st.Subscribe() }

func (a *imageAPI) RecentEvents(since time.Time) []image.Event { return a.st.Recent(since) }

// authenticator turns credentials sent by a client into an authenticator
// (nil: none sent; the store's own keychain is used).
func authenticator(a *api.RegistryAuth) authn.Authenticator {
	if a == nil || *a == (api.RegistryAuth{}) {
		return nil
	}
	return authn.FromConfig(authn.AuthConfig{Username: a.Username, Password: a.Password,
		IdentityToken: a.IdentityToken, RegistryToken: a.RegistryToken})
}
