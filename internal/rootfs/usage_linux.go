package rootfs

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"syscall"
)

// AllocatedBytes returns the bytes a file occupies on disk (0 if missing).
func AllocatedBytes(p string) int64 { return allocated(p) }

func allocated(p string) int64 {
	st, err := os.Lstat(p)
	if err != nil {
		return 0
	}
	if s, ok := st.Sys().(*syscall.Stat_t); ok {
		return s.Blocks * 512
	}
	return st.Size()
}

// DiskUsage is one file's apparent and allocated size.
type DiskUsage struct {
	Path      string `json:"path"`
	Size      int64  `json:"size"`      // apparent
	Allocated int64  `json:"allocated"` // on disk
}

// BaseUsage is a base and the machines using it.
type BaseUsage struct {
	Digest   string   `json:"digest"`
	Machines []string `json:"machines,omitempty"`
	DiskUsage
}

// MachineUsage is a machine's writable disk.
type MachineUsage struct {
	ID   string `json:"id"`
	Base string `json:"base"`
	Mode Mode   `json:"mode"`
	DiskUsage
}

// Usage is what Manager.Usage reports for `ferry system df`.
type Usage struct {
	Bases     []BaseUsage    `json:"bases"`
	Machines  []MachineUsage `json:"machines"`
	Templates []DiskUsage    `json:"templates"` // formatted sparse scratch templates, one per size
}

// Usage lists ready bases and machine disks with their real sizes.
func (m *Manager) Usage(ctx context.Context) (Usage, error) {
	bases, machines, err := m.viewRecords()
	if err != nil {
		return Usage{}, err
	}
	var u Usage
	users := map[string][]string{}
	for id, r := range machines {
		users[r.Base] = append(users[r.Base], id)
		u.Machines = append(u.Machines, MachineUsage{ID: id, Base: "sha256:" + r.Base, Mode: r.Mode, DiskUsage: usageOf(r.Writable)})
	}
	for hex, r := range bases {
		if r.State != stateReady {
			continue
		}
		ids := users[hex]
		sort.Strings(ids)
		u.Bases = append(u.Bases, BaseUsage{Digest: r.Digest, Machines: ids, DiskUsage: usageOf(m.basePath(hex))})
	}
	if ents, err := os.ReadDir(m.templates()); err == nil {
		for _, e := range ents {
			u.Templates = append(u.Templates, usageOf(filepath.Join(m.templates(), e.Name())))
		}
	}
	sort.Slice(u.Bases, func(i, j int) bool { return u.Bases[i].Digest < u.Bases[j].Digest })
	sort.Slice(u.Machines, func(i, j int) bool { return u.Machines[i].ID < u.Machines[j].ID })
	return u, nil
}

func usageOf(p string) DiskUsage {
	d := DiskUsage{Path: p, Allocated: allocated(p)}
	if st, err := os.Stat(p); err == nil {
		d.Size = st.Size()
	}
	return d
}
