package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ferryvm/ferry/internal/api"
	"github.com/ferryvm/ferry/internal/errdefs"
	"github.com/ferryvm/ferry/internal/image"
	"github.com/ferryvm/ferry/internal/paths"
	"github.com/ferryvm/ferry/internal/rootfs"
)

// registerRootfsAPI serves the rootfs API over the daemon's one rootfs
// manager (created in wireMachines).
func registerRootfsAPI(d *daemon, rfs *rootfs.Manager) {
	api.RegisterRootfs(d.api, &rootfsAPI{rfs: rfs, images: d.images, root: d.root})
}

// rootfsAPI adapts the rootfs manager and the image cache to
// api.RootfsService.
type rootfsAPI struct {
	rfs    *rootfs.Manager
	images *image.Store
	root   paths.Root
}

var _ api.RootfsService = (*rootfsAPI)(nil)

func baseInfo(h v1.Hash, b rootfs.Base) api.RootfsBase {
	return api.RootfsBase{Image: h.String(), Built: true, Path: b.Path, Size: b.Size,
		Allocated: rootfs.AllocatedBytes(b.Path), Created: b.Created}
}

func (a *rootfsAPI) EnsureRootfs(ctx context.Context, ref string) (api.RootfsBase, error) {
	img, h, err := a.images.Image(ctx, ref)
	if err != nil {
		return api.RootfsBase{}, err
	}
	if b, err := a.rfs.Base(ctx, h); err == nil {
		return baseInfo(h, b), nil
	}
	start := time.Now()
	b, err := a.rfs.EnsureBase(ctx, h, img)
	if err != nil {
		return api.RootfsBase{}, err
	}
	out := baseInfo(h, b)
	out.BuildSeconds = time.Since(start).Seconds()
	return out, nil
}

func (a *rootfsAPI) InspectRootfs(ctx context.Context, ref string) (api.RootfsBase, error) {
	_, h, err := a.images.Image(ctx, ref)
	if err != nil {
		return api.RootfsBase{}, err
	}
	b, err := a.rfs.Base(ctx, h)
	if errors.Is(err, errdefs.ErrNotFound) {
		return api.RootfsBase{Image: h.String()}, nil
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
	df.ContentBytes = duAllocated(a.root.Content())
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

// duAllocated sums the allocated bytes of the regular files under dir.
func duAllocated(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		if info, err := d.Info(); err == nil {
			if st, ok := info.Sys().(*syscall.Stat_t); ok {
				n += st.Blocks * 512
			}
		}
		return nil
	})
	return n
}
