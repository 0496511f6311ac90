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

// PlanTemplate is Plan with a QMP monitor (QMPPath(spec.Dir)) whether or
// not a drive is resizable: saving and resuming go through it, and a
// template and its restores must have the same devices.
func (d *Driver) PlanTemplate(spec vmm.Spec) (*vmm.Plan, error) {
	p, err := d.Plan(spec)
	if err != nil {
		return nil, err
	}
	if !slices.Contains(p.Args, "-mon") {
		fd := addExtra(p, vmm.ExtraFile{Name: "qmp", Path: QMPPath(spec.Dir), Listen: true})
		p.Args = append(p.Args, "-chardev", "socket,id=qmp,fd="+fd+",server=on,wait=off",
			"-mon", "chardev=qmp,mode=control")
	}
	return p, nil
}

// PlanRestore is PlanTemplate for a machine restored from the saved state
// at state (a template's, made by Save from a machine of the same layout):
// QEMU reads it from an inherited read-only descriptor (-incoming fd:N)
// and stays paused until Resume. The spec's own drives, TAPs, control
// socket and console are the restored machine's: migration carries device
// state, not backends.
func (d *Driver) PlanRestore(spec vmm.Spec, state string) (*vmm.Plan, error) {
	if state == "" {
		return nil, fmt.Errorf("qemu: restore %s: no template state: %w", spec.ID, errdefs.ErrInvalidArgument)
	}
	p, err := d.PlanTemplate(spec)
	if err != nil {
		return nil, err
	}
	fd := addExtra(p, vmm.ExtraFile{Name: "template", Path: state})
	p.Args = append(p.Args, "-incoming", "fd:"+fd)
	return p, nil
}

// addExtra appends x to p's inherited descriptors and returns its number.
func addExtra(p *vmm.Plan, x vmm.ExtraFile) string {
	x.FD = 3 + len(p.Extra)
	p.Extra = append(p.Extra, x)
	return strconv.Itoa(x.FD)
}

// StartTemplate starts a template machine (PlanTemplate).
func (d *Driver) StartTemplate(ctx context.Context, spec vmm.Spec) (*vmm.Process, error) {
	return d.start(ctx, spec, d.PlanTemplate)
}

// StartRestore starts a machine restored from state (PlanRestore); it runs
// no guest code until Resume.
func (d *Driver) StartRestore(ctx context.Context, spec vmm.Spec, state string) (*vmm.Process, error) {
	return d.start(ctx, spec, func(s vmm.Spec) (*vmm.Plan, error) { return d.PlanRestore(s, state) })
}

// Save pauses the template machine in dir and writes its whole state into
// f (QMP stop, getfd, migrate fd:), returning once the migration has
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
