package machine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path"
	"strings"

	"github.com/ferryvm/ferry/internal/api/types"
	"github.com/ferryvm/ferry/internal/errdefs"
	"github.com/ferryvm/ferry/internal/guest"
	"github.com/ferryvm/ferry/internal/volume"
)

// DriveResizer is a Hypervisor that can tell a running VM that one of its
// drives has grown (the daemon's adapter over qemu.ResizeDrive).
type DriveResizer interface {
	ResizeDrive(ctx context.Context, vm VM, drive string, size int64) error
}

// GrowVolume makes the running machine that writes v (just extended) use
// its new size now: the VMM's drive grows, then ferry-init's grow helper
// (guest.GrowHelperArg) grows the dm-crypt mapping and the ext4 online. It
// reports false, with no error, when no running machine writes v or its
// VMM cannot grow a drive: the machine then sees the size at its next
// start.
func (m *Manager) GrowVolume(ctx context.Context, v volume.Volume) (bool, error) {
	rz, ok := m.deps.Hypervisor.(DriveResizer)
	id := v.Writer()
	if !ok || id == "" {
		return false, nil
	}
	m.mu.Lock()
	r, mc := m.runs[id], m.machines[id]
	m.mu.Unlock()
	if r == nil || mc == nil {
		return false, nil
	}
	drive, target := "", ""
	for _, d := range r.vm.Spec.Drives {
		if d.Path == v.Path && d.Resizable {
			drive = d.ID
		}
	}
	for _, mt := range mc.Config.Mounts {
		if mt.Kind() == types.MountVolume && !mt.ReadOnly && (mt.Volume == v.Name || mt.Volume == v.ID) {
			target = path.Clean(mt.Path)
		}
	}
	if drive == "" || target == "" {
		return false, nil // started before its drives could grow
	}
	if err := rz.ResizeDrive(ctx, r.vm, drive, v.SizeBytes); errors.Is(err, errors.ErrUnsupported) {
		return false, nil
	} else if err != nil {
		return false, fmt.Errorf("grow volume %s in machine %s: %w", v.Name, id, err)
	}
	var stderr bytes.Buffer
	req := types.ExecRequest{Cmd: []string{guest.BuildHelper, guest.GrowHelperArg, target}, User: "0"}
	code, err := m.Exec(ctx, mc.App, id, req, guest.ExecIO{Stdout: &stderr, Stderr: &stderr})
	if err != nil {
		return false, fmt.Errorf("grow volume %s in machine %s: %w", v.Name, id, err)
	}
	if code != 0 {
		return false, fmt.Errorf("grow volume %s in machine %s: %s (exit %d): %w", v.Name, id, strings.TrimSpace(stderr.String()), code, errdefs.ErrUnavailable)
	}
	m.log.Info("volume grown online", "volume", v.Name, "machine", id, "size", volume.FormatSize(v.SizeBytes))
	return true, nil
}
