package rootfs

import (
	"context"
	"errors"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ferryvm/ferry/internal/errdefs"
	"github.com/ferryvm/ferry/internal/image"
)

// Images is what the rootfs needs from the image cache, beyond leases, to
// build bases on demand and to let images go (internal/image's Store;
// given with WithImages).
type Images interface {
	Image(ctx context.Context, ref string) (v1.Image, v1.Hash, error)
	ImageByDigest(ctx context.Context, d v1.Hash) (v1.Image, error)
	Remove(ctx context.Context, ref string, force bool) (*image.RemoveReport, error)
	Prune(ctx context.Context, all bool) (*image.PruneReport, error)
}

// PrepareImage is Prepare (overlay mode) on the base of the image with
// manifest digest d, building the base from the image cache first when
// there is none.
func (m *Manager) PrepareImage(ctx context.Context, id string, d v1.Hash) (Disks, error) {
	base, err := m.Base(ctx, d)
	if errors.Is(err, errdefs.ErrNotFound) {
		images, ierr := m.imageCache()
		if ierr != nil {
			return Disks{}, ierr
		}
		img, ierr := images.ImageByDigest(ctx, d)
		if ierr != nil {
			return Disks{}, ierr
		}
		base, err = m.EnsureBase(ctx, d, img)
	}
	if err != nil {
		return Disks{}, err
	}
	return m.Prepare(ctx, id, base, ModeOverlay)
}

// Reconcile releases the disks of every machine not in keep, then collects
// what nothing references.
func (m *Manager) Reconcile(ctx context.Context, keep []string) error {
	u, err := m.Usage(ctx)
	if err != nil {
		return err
	}
	k := map[string]bool{}
	for _, id := range keep {
		k[id] = true
	}
	var errs []error
	for _, mu := range u.Machines {
		if !k[mu.ID] {
			errs = append(errs, m.Release(ctx, mu.ID))
		}
	}
	_, err = m.GC(ctx)
	return errors.Join(append(errs, err)...)
}

// RemoveImage is `ferry rmi`: it removes ref from the image cache. A base
// is a cache of its image, not a user of it, so when the image is held only
// by its base's lease, the base (unused by any machine) is removed and the
// removal tried again.
func (m *Manager) RemoveImage(ctx context.Context, ref string, force bool) (*image.RemoveReport, error) {
	images, err := m.imageCache()
	if err != nil {
		return nil, err
	}
	r, err := images.Remove(ctx, ref, force)
	if !errors.Is(err, errdefs.ErrConflict) {
		return r, err
	}
	_, h, ierr := images.Image(ctx, ref)
	if ierr != nil {
		return r, err
	}
	if berr := m.RemoveBase(ctx, h); berr != nil {
		if !errors.Is(berr, errdefs.ErrNotFound) {
			m.o.log.Debug("keep rootfs base", "image", h, "err", berr)
		}
		return r, err
	}
	return images.Remove(ctx, ref, force)
}

// PruneImages is `ferry image prune`: with all, every image no machine
// holds goes, so the bases no machine uses are removed first (their leases
// release the images) and their bytes counted.
func (m *Manager) PruneImages(ctx context.Context, all bool) (*image.PruneReport, error) {
	images, err := m.imageCache()
	if err != nil {
		return nil, err
	}
	var baseBytes int64
	if all {
		rep, err := m.GC(ctx, PruneUnused())
		if err != nil {
			return nil, fmt.Errorf("prune unused bases: %w", err)
		}
		baseBytes = rep.BytesFreed
	}
	r, err := images.Prune(ctx, all)
	if err != nil {
		return nil, err
	}
	r.BytesFreed += baseBytes
	return r, nil
}

// WithImages gives the Manager the image cache that PrepareImage builds
// bases from and RemoveImage and PruneImages act on.
func WithImages(images Images) Option { return func(o *options) { o.images = images } }

func (m *Manager) imageCache() (Images, error) {
	if m.o.images == nil {
		return nil, fmt.Errorf("rootfs: no image cache (WithImages): %w", errdefs.ErrUnavailable)
	}
	return m.o.images, nil
}

// ImageBase returns the base of the cached image ref and the image's
// manifest digest; the base is ErrNotFound when it is not built.
func (m *Manager) ImageBase(ctx context.Context, ref string) (Base, v1.Hash, error) {
	images, err := m.imageCache()
	if err != nil {
		return Base{}, v1.Hash{}, err
	}
	_, h, err := images.Image(ctx, ref)
	if err != nil {
		return Base{}, v1.Hash{}, err
	}
	b, err := m.Base(ctx, h)
	return b, h, err
}

// EnsureImageBase returns the base of the cached image ref, building it
// first when there is none (built says so).
func (m *Manager) EnsureImageBase(ctx context.Context, ref string) (b Base, h v1.Hash, built bool, err error) {
	images, err := m.imageCache()
	if err != nil {
		return Base{}, v1.Hash{}, false, err
	}
	img, h, err := images.Image(ctx, ref)
	if err != nil {
		return Base{}, v1.Hash{}, false, err
	}
	if b, err := m.Base(ctx, h); err == nil {
		return b, h, false, nil
	}
	b, err = m.EnsureBase(ctx, h, img)
	return b, h, err == nil, err
}
