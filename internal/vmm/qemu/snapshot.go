package qemu

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ferryvm/ferry/internal/errdefs"
	"github.com/ferryvm/ferry/internal/vmm"
)

// Warm starts (docs/warm-starts.md): a template machine is started with
// PlanTemplate, saved with Save once its guest waits for its config, and
// every machine of its shape is then started with PlanRestore from the
// saved state and resumed with Resume. All of it keeps the sandbox: the
// state travels by descriptor (QMP getfd to save, an inherited descriptor
// with -incoming fd:N to restore), since a sandboxed QEMU may not spawn
// the shell that exec: migration needs.

// statePassName is the name QMP getfd gives the descriptor Save migrates to.
const statePassName = "ferry-template"

// ignoreShared is the migration capability that leaves RAM blocks mapped
// shared out of the stream: a template's RAM is a memfd it maps shared,
// saved apart (template.Store), so its state holds device state only. The
// incoming side must set it too (it changes the stream's block list).
const ignoreShared = "x-ignore-shared"

// PlanTemplate is Plan with a QMP monitor (QMPPath(spec.Dir)) whether or
// not a drive is resizable: saving and resuming go through it, and a
// template and its restores must have the same devices. With mem (a
// memfd of spec's memory size, template.NewMemory) the guest RAM is mem,
// mapped shared: what the guest writes is in mem once QEMU ends.
func (d *Driver) PlanTemplate(spec vmm.Spec, mem *os.File) (*vmm.Plan, error) {
	p, err := d.Plan(spec)
	if err != nil {
		return nil, err
	}
	if !slices.Contains(p.Args, "-mon") {
		fd := addExtra(p, vmm.ExtraFile{Name: "qmp", Path: QMPPath(spec.Dir), Listen: true})
		p.Args = append(p.Args, "-chardev", "socket,id=qmp,fd="+fd+",server=on,wait=off",
			"-mon", "chardev=qmp,mode=control")
	}
	if mem != nil {
		if err := memoryFile(p, spec, mem, true); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// memoryFile makes mem spec's guest RAM: a file backend QEMU opens through
// /proc/self/fd (a memfd is mode 0777, so the sandbox uid may; a sealed
// one cannot be written however it is opened), mapped shared or private.
func memoryFile(p *vmm.Plan, spec vmm.Spec, mem *os.File, share bool) error {
	if len(spec.Shares) > 0 {
		return fmt.Errorf("qemu: %s: a machine with bind mounts has its own shared memory and no template memory: %w", spec.ID, errdefs.ErrInvalidArgument)
	}
	i := slices.Index(p.Args, "-M")
	if i < 0 || i+1 >= len(p.Args) {
		return fmt.Errorf("qemu: %s: no -M in the plan: %w", spec.ID, errdefs.ErrInvalidArgument)
	}
	p.Args[i+1] += ",memory-backend=mem"
	opt := "memory-backend-file,id=mem,mem-path=/proc/self/fd/" + addExtra(p, vmm.ExtraFile{Name: "memory", File: mem}) +
		",size=" + strconv.Itoa(spec.MemoryMiB) + "M,share="
	if share {
		opt += "on"
	} else {
		opt += "off"
	}
	p.Args = append(p.Args, "-object", opt)
	return nil
}

// PlanRestore is PlanTemplate for a machine restored from the saved state
// at state (a template's, made by Save from a machine of the same layout)
// and, with mem, the template's guest RAM (a sealed memfd), mapped
// private: pages the guest does not write stay shared with every other
// machine of the template. QEMU waits for its incoming migration
// (-incoming defer: StartRestore starts it from an inherited read-only
// descriptor of state once x-ignore-shared is set) and stays paused until
// Resume. The spec's own drives, TAPs, control socket and console are the
// restored machine's: migration carries device state, not backends.
func (d *Driver) PlanRestore(spec vmm.Spec, state string, mem *os.File) (*vmm.Plan, error) {
	if state == "" {
		return nil, fmt.Errorf("qemu: restore %s: no template state: %w", spec.ID, errdefs.ErrInvalidArgument)
	}
	p, err := d.PlanTemplate(spec, nil)
	if err != nil {
		return nil, err
	}
	if mem != nil {
		if err := memoryFile(p, spec, mem, false); err != nil {
			return nil, err
		}
	}
	addExtra(p, vmm.ExtraFile{Name: "template", Path: state})
	p.Args = append(p.Args, "-incoming", "defer")
	return p, nil
}

// incomingFD is the descriptor PlanRestore passes the state as.
func incomingFD(p *vmm.Plan) (int, error) {
	for _, x := range p.Extra {
		if x.Name == "template" {
			return x.FD, nil
		}
	}
	return 0, fmt.Errorf("qemu: restore plan has no state descriptor: %w", errdefs.ErrInvalidArgument)
}

// addExtra appends x to p's inherited descriptors and returns its number.
func addExtra(p *vmm.Plan, x vmm.ExtraFile) string {
	x.FD = 3 + len(p.Extra)
	p.Extra = append(p.Extra, x)
	return strconv.Itoa(x.FD)
}

// StartTemplate starts a template machine (PlanTemplate).
func (d *Driver) StartTemplate(ctx context.Context, spec vmm.Spec, mem *os.File) (*vmm.Process, error) {
	return d.start(ctx, spec, func(s vmm.Spec) (*vmm.Plan, error) { return d.PlanTemplate(s, mem) })
}

// StartRestore starts a machine restored from state and mem (PlanRestore)
// and starts loading the state; it runs no guest code until Resume.
func (d *Driver) StartRestore(ctx context.Context, spec vmm.Spec, state string, mem *os.File) (*vmm.Process, error) {
	var plan *vmm.Plan
	p, err := d.start(ctx, spec, func(s vmm.Spec) (*vmm.Plan, error) {
		var err error
		plan, err = d.PlanRestore(s, state, mem)
		return plan, err
	})
	if err != nil {
		return nil, err
	}
	if err := incoming(ctx, spec.Dir, plan); err != nil {
		_ = p.Kill()
		<-p.Done()
		return nil, err
	}
	return p, nil
}

// incoming sets the restored machine's migration capabilities and starts
// loading its state from the inherited descriptor.
func incoming(ctx context.Context, dir string, plan *vmm.Plan) error {
	fd, err := incomingFD(plan)
	if err != nil {
		return err
	}
	q, err := dialQMP(ctx, dir)
	if err != nil {
		return fmt.Errorf("restore %s: %w", dir, err)
	}
	defer q.Close()
	if err := q.ignoreShared(); err != nil {
		return fmt.Errorf("restore %s: %w", dir, err)
	}
	if _, err := q.do("migrate-incoming", map[string]any{"uri": "fd:" + strconv.Itoa(fd)}, nil); err != nil {
		return fmt.Errorf("restore %s: %w", dir, err)
	}
	return nil
}

// Save pauses the template machine in dir and writes its state into f
// (QMP stop, getfd, migrate fd:) with x-ignore-shared: RAM mapped shared
// (PlanTemplate's mem) is left out. It returns once the migration has
// completed. The machine stays paused; the caller ends it.
func Save(ctx context.Context, dir string, f *os.File) error {
	q, err := dialQMP(ctx, dir)
	if err != nil {
		return fmt.Errorf("save %s: %w", dir, err)
	}
	defer q.Close()
	if _, err := q.do("stop", nil, nil); err != nil {
		return fmt.Errorf("save %s: %w", dir, err)
	}
	if err := q.ignoreShared(); err != nil {
		return fmt.Errorf("save %s: %w", dir, err)
	}
	if _, err := q.do("getfd", map[string]any{"fdname": statePassName}, f); err != nil {
		return fmt.Errorf("save %s: %w", dir, err)
	}
	if _, err := q.do("migrate", map[string]any{"uri": "fd:" + statePassName}, nil); err != nil {
		return fmt.Errorf("save %s: %w", dir, err)
	}
	err = poll(ctx, 10*time.Millisecond, func() (bool, error) {
		r, err := q.do("query-migrate", nil, nil)
		if err != nil {
			return false, err
		}
		var m struct {
			Status    string `json:"status"`
			ErrorDesc string `json:"error-desc"`
		}
		if err := json.Unmarshal(r, &m); err != nil {
			return false, fmt.Errorf("qmp query-migrate: %w", err)
		}
		switch m.Status {
		case "completed":
			return true, nil
		case "failed", "cancelled":
			return false, fmt.Errorf("migration %s: %s", m.Status, m.ErrorDesc)
		}
		return false, nil
	})
	if err != nil {
		return fmt.Errorf("save %s: %w", dir, err)
	}
	return nil
}

// Resume waits until the restored machine in dir has loaded its state,
// tells the guest each writable drive's real size (the template's sizes
// are in the saved device state: QMP block_resize), and runs it (cont).
func Resume(ctx context.Context, dir string, drives []vmm.Drive) error {
	q, err := dialQMP(ctx, dir)
	if err != nil {
		return fmt.Errorf("resume %s: %w", dir, err)
	}
	defer q.Close()
	err = poll(ctx, 5*time.Millisecond, func() (bool, error) {
		st, err := q.status()
		if err != nil {
			return false, err
		}
		switch st {
		case "inmigrate":
			return false, nil
		case "paused", "postmigrate", "prelaunch":
			return true, nil
		}
		return false, fmt.Errorf("restored VM is %q, not paused after loading its state", st)
	})
	if err != nil {
		return fmt.Errorf("resume %s: %w", dir, err)
	}
	for _, dr := range drives {
		if dr.ReadOnly {
			continue
		}
		fi, err := os.Stat(dr.Path)
		if err != nil {
			return fmt.Errorf("resume %s: drive %s: %w", dir, dr.ID, err)
		}
		if _, err := q.do("block_resize", map[string]any{"device": dr.ID, "size": fi.Size()}, nil); err != nil {
			return fmt.Errorf("resume %s: drive %s: %w", dir, dr.ID, err)
		}
	}
	if _, err := q.do("cont", nil, nil); err != nil {
		return fmt.Errorf("resume %s: %w", dir, err)
	}
	return nil
}

// Version is the first line of the QEMU binary's --version: part of a
// template's key, since a migration stream is read back only by the build
// that wrote it. It is read again when the binary changes.
func (d *Driver) Version(ctx context.Context) (string, error) {
	path, err := exec.LookPath(d.binary)
	if err != nil {
		return "", fmt.Errorf("qemu version: %w: %w", err, errdefs.ErrNotFound)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("qemu version: %w", err)
	}
	id := fmt.Sprintf("%s:%d:%d", path, fi.Size(), fi.ModTime().UnixNano())
	d.versionMu.Lock()
	defer d.versionMu.Unlock()
	if d.version[0] == id {
		return d.version[1], nil
	}
	out, err := exec.CommandContext(ctx, path, "--version").Output()
	if err != nil {
		return "", fmt.Errorf("qemu version: %s --version: %w", path, err)
	}
	v, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	if v == "" {
		return "", fmt.Errorf("qemu version: %s --version printed nothing: %w", path, errdefs.ErrUnavailable)
	}
	d.version = [2]string{id, v}
	return v, nil
}
