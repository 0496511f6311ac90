package rootfs

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
)

// GCOption configures GC.
type GCOption func(*gcOptions)

type gcOptions struct{ pruneUnused bool }

// PruneUnused makes GC also remove built bases no machine uses (their
// images then lose the base's lease and can be collected by the image
// cache). Without it GC only removes what nothing refers to.
func PruneUnused() GCOption { return func(o *gcOptions) { o.pruneUnused = true } }

// Report is what GC removed.
type Report struct {
	BasesRemoved    []string `json:"bases_removed,omitempty"`    // manifest digests
	MachinesCleaned []string `json:"machines_cleaned,omitempty"` // interrupted prepares/releases finished
	FilesRemoved    []string `json:"files_removed,omitempty"`    // orphan files
	BytesFreed      int64    `json:"bytes_freed"`                // allocated bytes
}

// GC finishes interrupted prepares, releases and builds, and removes base
// and machine disk files that no record refers to (and, with
// PruneUnused, bases no machine uses). Builds and machines in flight are
// left alone.
func (m *Manager) GC(ctx context.Context, opts ...GCOption) (Report, error) {
	var o gcOptions
	for _, opt := range opts {
		opt(&o)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var rep Report
	bases, machines, err := m.viewRecords()
	if err != nil {
		return rep, err
	}
	used := map[string]bool{}
	for id, r := range machines {
		if r.State != stateReady && !m.busy[id] {
			if err := m.releaseLocked(ctx, id); err != nil {
				return rep, err
			}
			rep.MachinesCleaned = append(rep.MachinesCleaned, id)
			continue
		}
		used[r.Base] = true
	}
	for hex, r := range bases {
		if m.flights[hex] != nil {
			continue
		}
		_, statErr := os.Stat(m.basePath(hex))
		switch {
		case r.State != stateReady, statErr != nil:
			rep.BytesFreed += allocated(m.basePath(hex))
			m.undoBase(ctx, hex)
		case o.pruneUnused && !used[hex]:
			freed := allocated(m.basePath(hex))
			if err := m.removeBaseLocked(ctx, hex); err != nil {
				return rep, err
			}
			rep.BytesFreed += freed
		default:
			continue
		}
		rep.BasesRemoved = append(rep.BasesRemoved, r.Digest)
	}
	bases, machines, err = m.viewRecords()
	if err != nil {
		return rep, err
	}
	// Base files without a ready record.
	entries, _ := os.ReadDir(m.root.Bases())
	for _, e := range entries {
		hex, ok := strings.CutSuffix(e.Name(), ".ext4")
		if ok && (bases[hex].State == stateReady || m.flights[hex] != nil) {
			continue
		}
		m.removeOrphan(&rep, filepath.Join(m.root.Bases(), e.Name()))
	}
	// Machine disk files without a record.
	dirs, _ := os.ReadDir(m.root.Machines())
	for _, d := range dirs {
		id := d.Name()
		if m.busy[id] {
			continue
		}
		r, ok := machines[id]
		for _, name := range []string{"scratch.ext4", "rootfs.ext4", "scratch.ext4.tmp", "rootfs.ext4.tmp"} {
			p := filepath.Join(m.root.Machine(id), name)
			if ok && r.Writable == p {
				continue
			}
			if _, err := os.Lstat(p); err == nil {
				m.removeOrphan(&rep, p)
			}
		}
	}
	return rep, nil
}

func (m *Manager) removeOrphan(rep *Report, p string) {
	freed := allocated(p)
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		m.o.log.Warn("gc: remove orphan", "path", p, "err", err)
		return
	}
	rep.FilesRemoved = append(rep.FilesRemoved, p)
	rep.BytesFreed += freed
}
