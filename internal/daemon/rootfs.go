package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ferryvm/ferry/internal/api"
	"github.com/ferryvm/ferry/internal/errdefs"
	"github.com/ferryvm/ferry/internal/image"
	"github.com/ferryvm/ferry/internal/rootfs"
)

// registerRootfsAPI serves the rootfs API over the daemon's one rootfs
// manager (created in wireMachines).
func registerRootfsAPI(d *daemon, rfs *rootfs.Manager) {
	api.RegisterRootfs(d.api, &rootfsAPI{rfs: rfs, images: d.images})
}

// rootfsAPI adapts the rootfs manager and the image cache to
// api.RootfsService.
type rootfsAPI struct {
	rfs    *rootfs.Manager
	images *image.Store
}

var _ api.RootfsService = (*rootfsAPI)(nil)

func baseInfo(h v1.Hash, b rootfs.Base) api.RootfsBase {
	return api.RootfsBase{Image: h.String(), Built: true, Path: b.Path, Size: b.Size,
		Allocated: rootfs.AllocatedBytes(b.Path), Created: b.Created}
}

func (a *rootfsAPI) EnsureRootfs(ctx context.Context, ref string) (api.RootfsBase, error) {
	start := time.Now()
	b, h, built, err := a.rfs.EnsureImageBase(ctx, ref)
	if err != nil {
		return api.RootfsBase{}, err
	}
	out := baseInfo(h, b)
	if built {
		out.BuildSeconds = time.Since(start).Seconds()
	}
	return out, nil
}

func (a *rootfsAPI) InspectRootfs(ctx context.Context, ref string) (api.RootfsBase, error) {
	b, h, err := a.rfs.ImageBase(ctx, ref)
	if errors.Is(err, errdefs.ErrNotFound) && h != (v1.Hash{}) {
		return api.RootfsBase{Image: h.String()}, nil // cached, base not built
	}
	if err != nil {
		return api.RootfsBase{}, err
	}
	return baseInfo(h, b), nil
}

func (a *rootfsAPI) OpenRootfs(ctx context.Context, ref string) (io.ReadCloser, api.RootfsBase, error) {
	info, err := a.InspectRootfs(ctx, ref)
	if err != nil {
		return nil, info, err
	}
	if !info.Built {
		return nil, info, fmt.Errorf("rootfs of %s is not built; run `ferry image rootfs %s`: %w", ref, ref, errdefs.ErrNotFound)
	}
	f, err := os.Open(info.Path)
	if err != nil {
		return nil, info, err
	}
	return f, info, nil
}

func (a *rootfsAPI) DiskUsage(ctx context.Context) (api.SystemDF, error) {
	var df api.SystemDF
	list, err := a.images.List(ctx)
	if err != nil {
		return df, err
	}
	df.Images = list
	df.ContentBytes = a.images.ContentAllocated()
	u, err := a.rfs.Usage(ctx)
	if err != nil {
		return df, err
	}
	df.Bases, df.Machines = u.Bases, u.Machines
	for _, t := range u.Templates {
		df.TemplatesBytes += t.Allocated
	}
	return df, nil
}
