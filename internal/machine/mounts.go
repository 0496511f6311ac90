package machine

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/ferryvm/ferry/internal/api/types"
	"github.com/ferryvm/ferry/internal/errdefs"
	"github.com/ferryvm/ferry/internal/guest"
	"github.com/ferryvm/ferry/internal/vmm"
	"github.com/ferryvm/ferry/internal/volume"
)

// A machine's mounts: named and anonymous volumes (virtio-blk drives the
// guest opens, formats and grows), bind mounts of host directories
// (virtio-fs shares, QEMU only) and tmpfs. A machine references its volumes
// from its creation to its removal (they cannot be removed under it) and
// holds them while it runs: each start claims them (one writer at a time;
// a conflict fails the start), each stop, exit or failed start lets them
// go, so a start after a daemon restart or a host reboot claims the same
// volumes again.

// Volumes holds the named volumes machines mount (a *volume.Store).
type Volumes interface {
	Get(ctx context.Context, app, ref string) (volume.Volume, error)
	Create(ctx context.Context, req volume.CreateRequest) (volume.Volume, error)
	// Reference records that machine mounts a volume (it cannot be removed).
	Reference(ctx context.Context, app, ref, machine string, readOnly bool) error
	// Attach holds a volume for a machine while it runs: one writer or any
	// number of readers (ErrConflict otherwise); again for the same
	// machine it is a no-op.
	Attach(ctx context.Context, app, ref, machine string, readOnly bool) (*volume.Attached, error)
	// Deactivate ends machine's Attach holds (it stopped).
	Deactivate(ctx context.Context, machine string) error
	// Detach drops machine's attachment of one volume.
	Detach(ctx context.Context, app, ref, machine string) error
	// Release drops every attachment of machine and returns its volumes.
	Release(ctx context.Context, machine string) ([]volume.Volume, error)
	Remove(ctx context.Context, app, ref string) error
	// Reconcile drops attachments of machines not in known and ends the
	// holds of those not in running.
	Reconcile(ctx context.Context, known, running []string) error
}

// BindPolicy decides whether the caller behind ctx may bind-mount a host
// directory (Options.BindAllowed).
type BindPolicy func(ctx context.Context, source string) error

// RemoteBindPolicy lets local callers bind-mount any directory and remote
// ones (remote(ctx) true: the TCP API) only directories under allowed.
func RemoteBindPolicy(remote func(context.Context) bool, allowed []string) BindPolicy {
	return func(ctx context.Context, source string) error {
		if !remote(ctx) {
			return nil
		}
		for _, a := range allowed {
			if rel, err := filepath.Rel(filepath.Clean(a), source); err == nil && rel != ".." && !strings.HasPrefix(rel, "../") {
				return nil
			}
		}
		paths := "none"
		if len(allowed) > 0 {
			paths = strings.Join(allowed, ", ")
		}
		return fmt.Errorf("a bind mount is a host privilege: the TCP API allows it only under the daemon's --allow-remote-bind paths (now: %s); use the local socket: %w", paths, errdefs.ErrUnauthorized)
	}
}

// validateMounts checks the shape of a config's mounts.
func validateMounts(ms []types.Mount) error {
	bad := func(i int, field, format string, a ...any) error {
		return fmt.Errorf("config.mounts[%d].%s: %s: %w", i, field, fmt.Sprintf(format, a...), errdefs.ErrInvalidArgument)
	}
	seen := map[string]bool{}
	for i, m := range ms {
		if !path.IsAbs(m.Path) || path.Clean(m.Path) == "/" {
			return bad(i, "path", "%q must be an absolute path other than /", m.Path)
		}
		p := path.Clean(m.Path)
		if seen[p] {
			return bad(i, "path", "%s is mounted twice", p)
		}
		seen[p] = true
		if m.SizeMB < 0 {
			return bad(i, "size_mb", "%d is negative", m.SizeMB)
		}
		switch m.Kind() {
		case types.MountTmpfs:
			if m.Source != "" || m.Volume != "" {
				return bad(i, "type", "a tmpfs has no source or volume")
			}
		case types.MountVolume:
			if m.Source != "" {
				return bad(i, "source", "a volume mount names its volume in volume, not source")
			}
			if m.Volume != "" && !strings.HasPrefix(m.Volume, "vol_") {
				if err := volume.ValidateName(m.Volume); err != nil {
					return fmt.Errorf("config.mounts[%d].volume: %w", i, err)
				}
			}
			if m.SizeMB > 0 {
				if _, err := volume.CheckSize(int64(m.SizeMB) << 20); err != nil {
					return fmt.Errorf("config.mounts[%d].size_mb: %w", i, err)
				}
			}
		case types.MountBind:
			if m.Volume != "" {
				return bad(i, "volume", "a bind mount names a host directory in source")
			}
			if !filepath.IsAbs(m.Source) || filepath.Clean(m.Source) != m.Source {
				return bad(i, "source", "%q: a bind mount's source is a clean absolute host path", m.Source)
			}
		default:
			return bad(i, "type", "%q: want volume, bind or tmpfs", m.Type)
		}
	}
	return nil
}

// withImageVolumes adds an anonymous volume for each of the image's
// VOLUME paths that no mount of c covers (Docker's behaviour).
func withImageVolumes(c *types.Config, paths []string) {
	have := map[string]bool{}
	for _, m := range c.Mounts {
		have[path.Clean(m.Path)] = true
	}
	for _, p := range paths {
		if p = path.Clean(p); !path.IsAbs(p) || p == "/" || have[p] {
			continue
		}
		have[p] = true
		c.Mounts = append(c.Mounts, types.Mount{Type: types.MountVolume, Path: p})
	}
}

// bindsNeedQEMU picks QEMU for a config with bind mounts that names no
// VMM: Firecracker, the default where KVM works, has no file sharing.
func bindsNeedQEMU(c *types.Config) {
	if c.VMM == "" && slices.ContainsFunc(c.Mounts, func(mt types.Mount) bool { return mt.Kind() == types.MountBind }) {
		c.VMM = "qemu"
	}
}

// checkBinds refuses bind mounts the caller may not make, whose source is
// not a directory, or that the machine's VMM cannot serve.
func (m *Manager) checkBinds(ctx context.Context, c types.Config) error {
	for i, mt := range c.Mounts {
		if mt.Kind() != types.MountBind {
			continue
		}
		if c.VMM == "firecracker" {
			return fmt.Errorf("config.mounts[%d]: bind mount %s: Firecracker has no file sharing: run the machine under QEMU (--vmm qemu) or use a volume: %w", i, mt.Source, errdefs.ErrInvalidArgument)
		}
		if m.opt.BindAllowed != nil {
			if err := m.opt.BindAllowed(ctx, mt.Source); err != nil {
				return fmt.Errorf("config.mounts[%d]: bind mount %s: %w", i, mt.Source, err)
			}
		}
		fi, err := os.Stat(mt.Source)
		if err != nil || !fi.IsDir() {
			return fmt.Errorf("config.mounts[%d]: bind mount source %s is not an existing directory on the daemon's host: %w", i, mt.Source, errdefs.ErrInvalidArgument)
		}
	}
	return nil
}

// attachVolumes references the volumes of mc's mounts for mc, creating
// named ones on first use and anonymous ones for mounts that name none
// (their generated names are written into mc's config). On error what it
// did stays for releaseVolumes to undo.
func (m *Manager) attachVolumes(ctx context.Context, mc *types.Machine) error {
	for i := range mc.Config.Mounts {
		mt := &mc.Config.Mounts[i]
		if mt.Kind() != types.MountVolume {
			continue
		}
		if m.deps.Volumes == nil {
			return fmt.Errorf("config.mounts[%d]: this daemon serves no volumes: %w", i, errdefs.ErrUnavailable)
		}
		if mt.Volume == "" {
			v, err := m.deps.Volumes.Create(ctx, m.newVolume(mc, *mt, "", true))
			if err != nil {
				return fmt.Errorf("anonymous volume for %s: %w", mt.Path, err)
			}
			mt.Volume = v.Name
		} else if _, err := m.deps.Volumes.Get(ctx, mc.App, mt.Volume); errors.Is(err, errdefs.ErrNotFound) && !strings.HasPrefix(mt.Volume, "vol_") {
			if _, err := m.deps.Volumes.Create(ctx, m.newVolume(mc, *mt, mt.Volume, false)); err != nil && !errors.Is(err, errdefs.ErrAlreadyExists) {
				return fmt.Errorf("create volume %s: %w", mt.Volume, err)
			}
		} else if err != nil {
			return err
		}
		if err := m.deps.Volumes.Reference(ctx, mc.App, mt.Volume, mc.ID, mt.ReadOnly); err != nil {
			return err
		}
	}
	return nil
}

// deactivateVolumes lets the volumes mc held while running go (it stopped).
func (m *Manager) deactivateVolumes(ctx context.Context, id string) error {
	if m.deps.Volumes == nil {
		return nil
	}
	return m.deps.Volumes.Deactivate(ctx, id)
}

func (m *Manager) newVolume(mc *types.Machine, mt types.Mount, name string, anonymous bool) volume.CreateRequest {
	return volume.CreateRequest{App: mc.App, Name: name, Anonymous: anonymous, Size: int64(mt.SizeMB) << 20,
		Encrypted: mt.Encrypted, Labels: map[string]string{"ferry.machine": mc.ID}}
}

// releaseVolumes drops mc's attachments; with anonymous it also removes
// the anonymous volumes nobody else holds (rm -v, --rm).
func (m *Manager) releaseVolumes(ctx context.Context, mc *types.Machine, anonymous bool) error {
	if m.deps.Volumes == nil {
		return nil
	}
	vs, err := m.deps.Volumes.Release(ctx, mc.ID)
	if err != nil {
		return fmt.Errorf("release volumes: %w", err)
	}
	var errs []error
	for _, v := range vs {
		if anonymous && v.Anonymous && len(v.Attachments) == 0 {
			if err := ignoreNotFound(m.deps.Volumes.Remove(ctx, v.App, v.ID)); err != nil {
				errs = append(errs, fmt.Errorf("remove anonymous volume %s: %w", v.Name, err))
			}
		}
	}
	return errors.Join(errs...)
}

// mountPlan is what one start of a machine mounts: extra drives after the
// root's, virtio-fs shares, and the guest's mounts in the order init
// makes them (parents before the paths below them).
type mountPlan struct {
	Drives []vmm.Drive
	Shares []vmm.Share
	Guest  []guest.Mount
}

// planMounts claims mc's volumes for this start (Attach: a volume another
// running machine writes is a conflict) and lays out its mounts, volume
// drives following the first drives (vda, vdb, ...).
func (m *Manager) planMounts(ctx context.Context, mc *types.Machine, firstDrives int) (mountPlan, error) {
	var p mountPlan
	ms := slices.Clone(mc.Config.Mounts)
	slices.SortStableFunc(ms, func(a, b types.Mount) int { return depth(a.Path) - depth(b.Path) })
	for _, mt := range ms {
		gm := guest.Mount{Target: path.Clean(mt.Path), ReadOnly: mt.ReadOnly}
		switch mt.Kind() {
		case types.MountTmpfs:
			gm.Source, gm.FSType = "tmpfs", "tmpfs"
			if mt.SizeMB > 0 {
				gm.Options = []string{fmt.Sprintf("size=%dm", mt.SizeMB)}
			}
		case types.MountBind:
			tag := fmt.Sprintf("fs%d", len(p.Shares))
			p.Shares = append(p.Shares, vmm.Share{Tag: tag, Source: mt.Source, ReadOnly: mt.ReadOnly})
			gm.Source, gm.FSType, gm.Name = tag, guest.FSTypeVirtioFS, mt.Source
		case types.MountVolume:
			if m.deps.Volumes == nil {
				return p, fmt.Errorf("volume %s: this daemon serves no volumes: %w", mt.Volume, errdefs.ErrUnavailable)
			}
			a, err := m.deps.Volumes.Attach(ctx, mc.App, mt.Volume, mc.ID, mt.ReadOnly)
			if err != nil {
				return p, err
			}
			n := firstDrives + len(p.Drives)
			if n >= 26 {
				return p, fmt.Errorf("volume %s: at most %d volumes per machine: %w", mt.Volume, 26-firstDrives, errdefs.ErrInvalidArgument)
			}
			p.Drives = append(p.Drives, vmm.Drive{ID: fmt.Sprintf("vol%d", len(p.Drives)), Path: a.Path, ReadOnly: mt.ReadOnly, Resizable: !mt.ReadOnly})
			gm.Source, gm.FSType, gm.Name = "/dev/vd"+string(rune('a'+n)), "ext4", a.Volume.Name
			gm.Format, gm.Grow = true, true
			if a.Key != nil {
				gm.Encryption = &guest.Encryption{Type: guest.EncryptionLUKS2, Key: base64.StdEncoding.EncodeToString(a.Key)}
				clear(a.Key)
			}
		}
		p.Guest = append(p.Guest, gm)
	}
	return p, nil
}

func depth(p string) int { return strings.Count(path.Clean(p), "/") }

// keepAnonymousVolumes carries mc's anonymous volumes into a new config
// cfg that mounts nothing at their paths (an update keeps the image's
// VOLUME data, as a volume the user never named cannot be named again).
func (m *Manager) keepAnonymousVolumes(ctx context.Context, mc *types.Machine, cfg *types.Config) error {
	if m.deps.Volumes == nil {
		return nil
	}
	have := map[string]int{}
	for i, mt := range cfg.Mounts {
		have[path.Clean(mt.Path)] = i
	}
	for _, old := range mc.Config.Mounts {
		if old.Kind() != types.MountVolume {
			continue
		}
		v, err := m.deps.Volumes.Get(ctx, mc.App, old.Volume)
		if err != nil || !v.Anonymous {
			continue
		}
		i, ok := have[path.Clean(old.Path)]
		switch {
		case !ok:
			cfg.Mounts = append(cfg.Mounts, old)
		case cfg.Mounts[i].Kind() == types.MountVolume && cfg.Mounts[i].Volume == "":
			cfg.Mounts[i].Volume = old.Volume
		}
	}
	return nil
}

// detachUnmounted releases the volumes mc holds that cfg no longer mounts.
func (m *Manager) detachUnmounted(ctx context.Context, mc *types.Machine, cfg types.Config) error {
	if m.deps.Volumes == nil {
		return nil
	}
	keep := map[string]bool{}
	for _, mt := range cfg.Mounts {
		if mt.Kind() == types.MountVolume {
			if v, err := m.deps.Volumes.Get(ctx, mc.App, mt.Volume); err == nil {
				keep[v.ID] = true
			}
		}
	}
	for _, old := range mc.Config.Mounts {
		if old.Kind() != types.MountVolume {
			continue
		}
		v, err := m.deps.Volumes.Get(ctx, mc.App, old.Volume)
		if err != nil || keep[v.ID] {
			continue
		}
		if err := m.deps.Volumes.Detach(ctx, mc.App, v.ID, mc.ID); err != nil {
			return err
		}
	}
	return nil
}
