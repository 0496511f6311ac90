package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ferryvm/ferry/internal/api"
	"github.com/ferryvm/ferry/internal/errdefs"
	"github.com/ferryvm/ferry/internal/image"
	"github.com/ferryvm/ferry/internal/rootfs"
)

// wireImages opens the image cache and serves the image API.
func wireImages(ctx context.Context, d *daemon) error {
	st, err := image.Open(ctx, d.root, d.db,
		image.WithLogger(d.log.With("svc", "image")),
		image.WithInsecureRegistries(d.cfg.InsecureRegistries...))
	if err != nil {
		return err
	}
	d.images = st
	api.RegisterImages(d.api, &imageAPI{st: st, d: d, insecure: d.cfg.InsecureRegistries, log: d.log.With("svc", "image")})
	return nil
}

// imageAPI adapts the image store to api.ImageService.
type imageAPI struct {
	st       *image.Store
	d        *daemon  // for the rootfs manager, wired after the image store
	insecure []string // the daemon's --insecure-registry list
	log      *slog.Logger
}

var _ api.ImageService = (*imageAPI)(nil)

func (a *imageAPI) Pull(ctx context.Context, req api.PullRequest, progress image.ProgressFunc) (image.PullResult, error) {
	if err := a.checkInsecure(req.Ref, req.InsecureRegistries); err != nil {
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
	if err := a.checkInsecure(req.Ref, req.InsecureRegistries); err != nil {
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
	d, err := a.st.Inspect(ctx, ref)
	if err != nil {
		return image.Details{}, err
	}
	return *d, nil
}

func (a *imageAPI) Tag(ctx context.Context, src, dst string) error { return a.st.Tag(ctx, src, dst) }

func (a *imageAPI) Remove(ctx context.Context, ref string, force bool) (image.RemoveReport, error) {
	r, err := a.st.Remove(ctx, ref, force)
	if errors.Is(err, errdefs.ErrConflict) && a.dropUnusedBase(ctx, ref) {
		r, err = a.st.Remove(ctx, ref, force)
	}
	if err != nil {
		return image.RemoveReport{}, err
	}
	return *r, nil
}

// dropUnusedBase removes the rootfs base built from ref's image when no
// machine uses it (a base is a cache, not a user of the image: its lease must
// not keep `rmi` from deleting the image). It reports whether it removed one.
func (a *imageAPI) dropUnusedBase(ctx context.Context, ref string) bool {
	if a.d == nil || a.d.rootfs == nil {
		return false
	}
	_, h, err := a.st.Image(ctx, ref)
	if err != nil {
		return false
	}
	err = a.d.rootfs.RemoveBase(ctx, h)
	if err != nil && !errors.Is(err, errdefs.ErrNotFound) {
		a.log.Debug("keep rootfs base", "image", h, "err", err)
	}
	return err == nil
}

func (a *imageAPI) Prune(ctx context.Context, all bool) (image.PruneReport, error) {
	var baseBytes int64
	if all && a.d != nil && a.d.rootfs != nil {
		// -a removes every image no machine holds: first drop the bases no
		// machine uses, so their leases release the images.
		rep, err := a.d.rootfs.GC(ctx, rootfs.PruneUnused())
		if err != nil {
			return image.PruneReport{}, err
		}
		baseBytes = rep.BytesFreed
	}
	r, err := a.st.Prune(ctx, all)
	if err != nil {
		return image.PruneReport{}, err
	}
	r.BytesFreed += baseBytes
	return *r, nil
}

func (a *imageAPI) Load(ctx context.Context, r io.Reader) ([]image.Loaded, error) {
	return a.st.Load(ctx, r)
}

func (a *imageAPI) Save(ctx context.Context, w io.Writer, refs []string) error {
	return a.st.Save(ctx, w, refs)
}

// Verify re-hashes every blob and checks that every image's manifest,
// config and layers are present.
func (a *imageAPI) Verify(ctx context.Context) (api.VerifyReport, error) {
	var rep api.VerifyReport
	bad, err := a.st.Verify(ctx)
	if err != nil {
		return rep, fmt.Errorf("verify blobs: %w", err)
	}
	for _, d := range bad {
		rep.Corrupt = append(rep.Corrupt, api.BlobProblem{Digest: d.String(), Reason: "content does not match its digest"})
	}
	cs := a.st.Content()
	if err := cs.Walk(func(_ v1.Hash, size int64) error {
		rep.Blobs++
		rep.Bytes += size
		return nil
	}); err != nil {
		return rep, err
	}
	list, err := a.st.List(ctx)
	if err != nil {
		return rep, err
	}
	for _, s := range list {
		rep.Images++
		name := s.ID.String()
		if len(s.RepoTags) > 0 {
			name = s.RepoTags[0]
		}
		want := []v1.Hash{s.ID}
		if det, err := a.st.Inspect(ctx, s.ID.String()); err != nil {
			rep.Missing = append(rep.Missing, api.BlobProblem{Digest: s.ID.String(), Image: name, Reason: err.Error()})
			continue
		} else {
			want = append(want, det.ConfigDigest)
			for _, l := range det.Layers {
				want = append(want, l.Digest)
			}
		}
		for _, h := range want {
			if !cs.Has(h) {
				rep.Missing = append(rep.Missing, api.BlobProblem{Digest: h.String(), Image: name, Reason: "blob missing from the cache"})
			}
		}
	}
	return rep, nil
}

// checkInsecure fails when the caller asks for plain HTTP to a registry the
// daemon was not started to reach that way (loopback is always allowed).
func (a *imageAPI) checkInsecure(ref string, asked []string) error {
	for _, h := range asked {
		if slices.Contains(a.insecure, h) || isLoopback(h) {
			continue
		}
		return fmt.Errorf("pull/push %s: the daemon does not treat %s as an insecure registry; restart it with `ferry daemon --insecure-registry %s`: %w",
			ref, h, h, errdefs.ErrInvalidArgument)
	}
	return nil
}

func isLoopback(hostport string) bool {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		host = hostport
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// authenticator turns credentials sent by a client into an authenticator
// (nil: none sent; the store's own keychain is used).
func authenticator(a *api.RegistryAuth) authn.Authenticator {
	if a == nil || *a == (api.RegistryAuth{}) {
		return nil
	}
	return authn.FromConfig(authn.AuthConfig{Username: a.Username, Password: a.Password,
		IdentityToken: a.IdentityToken, RegistryToken: a.RegistryToken})
}
