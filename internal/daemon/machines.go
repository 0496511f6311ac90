package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"regexp"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ferryvm/ferry/internal/api"
	"github.com/ferryvm/ferry/internal/errdefs"
	"github.com/ferryvm/ferry/internal/guest"
	"github.com/ferryvm/ferry/internal/image"
	"github.com/ferryvm/ferry/internal/kernel"
	"github.com/ferryvm/ferry/internal/machine"
	"github.com/ferryvm/ferry/internal/network"
	"github.com/ferryvm/ferry/internal/rootfs"
)

// wireMachines builds the machine manager over the image cache, rootfs,
// kernel, VMM drivers and network, reconciles what a previous daemon left,
// and serves the Machines API.
func wireMachines(ctx context.Context, d *daemon) error {
	log := d.log.With("svc", "machine")
	rfs, err := rootfs.New(ctx, d.db, d.root, d.images, rootfs.WithLogger(d.log.With("svc", "rootfs")))
	if err != nil {
		return err
	}
	d.rootfs = rfs
	registerRootfsAPI(d, rfs)
	hv := newHypervisor(d.root, d.cfg.VMM, log)
	deps := machine.Deps{
		Images:      &machineImages{st: d.images},
		Rootfs:      &machineRootfs{rfs: rfs, images: d.images},
		Boot:        kernel.NewAssets(d.root.Kernel(), log),
		Hypervisor:  hv,
		ConsoleExit: consoleExit,
		HideLine:    hideConsoleLine,
	}
	var users network.Users
	nw, err := openNetwork(ctx, d, &users)
	if err != nil {
		return err
	}
	deps.Network = nw
	m, err := machine.New(d.db, deps, machine.Options{MachinesDir: d.root.Machines(), DefaultVMM: d.cfg.VMM, Logger: log})
	if err != nil {
		return err
	}
	users = m.NetworkUsers
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	go hv.rotator.Run(rctx)
	d.onClose(func() error { cancel(); return m.Close() })
	if err := m.Reconcile(ctx); err != nil {
		log.Warn("reconcile machines", "err", err)
	}
	api.RegisterMachines(d.api, m)
	api.RegisterNetworks(d.api, nw, m)
	return nil
}

// machineImages resolves references in the image cache, pulling on a miss.
type machineImages struct{ st *image.Store }

func (a *machineImages) Resolve(ctx context.Context, ref string) (*machine.Image, error) {
	img, d, err := a.st.Image(ctx, ref)
	if errors.Is(err, errdefs.ErrNotFound) {
		if _, perr := a.st.Pull(ctx, ref); perr != nil {
			return nil, fmt.Errorf("not in the cache and pull failed: %w", perr)
		}
		img, d, err = a.st.Image(ctx, ref)
	}
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("image config: %w", err)
	}
	c := cf.Config
	return &machine.Image{Ref: ref, Digest: d.String(), Config: guest.Image{
		Entrypoint: c.Entrypoint, Cmd: c.Cmd, Env: c.Env, User: c.User, WorkingDir: c.WorkingDir}}, nil
}

// machineRootfs gives machines an overlay root: the image's shared
// read-only base plus a sparse scratch disk.
type machineRootfs struct {
	rfs    *rootfs.Manager
	images *image.Store
}

func (a *machineRootfs) Prepare(ctx context.Context, id string, img *machine.Image) (*machine.Disks, error) {
	h, err := v1.NewHash(img.Digest)
	if err != nil {
		return nil, fmt.Errorf("image digest %q: %w", img.Digest, errdefs.ErrInvalidArgument)
	}
	base, err := a.rfs.Base(ctx, h)
	if errors.Is(err, errdefs.ErrNotFound) {
		vimg, ierr := a.images.ImageByDigest(ctx, h)
		if ierr != nil {
			return nil, ierr
		}
		base, err = a.rfs.EnsureBase(ctx, h, vimg)
	}
	if err != nil {
		return nil, err
	}
	disks, err := a.rfs.Prepare(ctx, id, base, rootfs.ModeOverlay)
	if err != nil {
		return nil, err
	}
	return &machine.Disks{Base: disks.Base, Scratch: disks.Writable, ReadOnly: true}, nil
}

func (a *machineRootfs) Release(ctx context.Context, id string) error { return a.rfs.Release(ctx, id) }

func (a *machineRootfs) Reconcile(ctx context.Context, keep []string) error {
	u, err := a.rfs.Usage(ctx)
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
			errs = append(errs, a.rfs.Release(ctx, mu.ID))
		}
	}
	_, err = a.rfs.GC(ctx)
	return errors.Join(append(errs, err)...)
}

// consoleExit recovers the entrypoint's exit from init's marker line, the
// last one in the console log (or its rotated copy).
func consoleExit(path string) *machine.Exit {
	for _, p := range []string{path, path + ".1"} {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		var last *machine.Exit
		for _, line := range splitLinesString(string(b)) {
			if s, ok := guest.ParseConsoleExit(line); ok {
				last = exitFromGuest(s)
			}
		}
		if last != nil {
			return last
		}
	}
	return nil
}

// hideConsoleLine leaves init's exit marker and kernel messages (printk's
// "[    6.537570] " prefix) out of a machine's logs: they are the
// platform's, not the entrypoint's.
func hideConsoleLine(line []byte) bool {
	return containsBytes(line, guest.ConsoleExitPrefix) || printkRE.Match(line)
}

var printkRE = regexp.MustCompile(`^\[ *[0-9]+\.[0-9]{6}\] `)
