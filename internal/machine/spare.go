package machine

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/ferryvm/ferry/internal/api/types"
	"github.com/ferryvm/ferry/internal/guest"
	"github.com/ferryvm/ferry/internal/mkext4"
	"github.com/ferryvm/ferry/internal/network"
	"github.com/ferryvm/ferry/internal/vmm"
	"github.com/ferryvm/ferry/internal/vmm/template"
)

// Spares (Options.Spares, docs/warm-starts.md): a second after a machine
// of a key started warm or took a spare of it (and at once for the default
// shape's template that Prewarm built), the manager restores one more
// machine of that key ahead of any request — under the machine ID and
// directory the next machine of that shape will get — runs it, connects to
// its waiting ferry-init and has it rehearse a start (guest.Rehearser:
// under TCG the restored VMM translates the start's guest paths then, not
// during the machine's start).
// The next create whose config fits takes that ID; its start then gives
// the spare its disks and TAPs (Warm.Claim) and sends the run config, so
// launching QEMU, loading the state, resuming and meeting ferry-init are
// off the machine's start. A spare belongs to no recorded machine: a
// daemon restart reaps it (collectOrphans) and Close ends it.

// rehearser is a control client that can ask a waiting guest to rehearse
// a start with a warm config (guest.Rehearser).
type rehearser interface {
	Rehearse(ctx context.Context, w *guest.WarmConfig) error
}

var _ rehearser = (*guest.Client)(nil)

// spare is a restored machine waiting for a machine to become.
type spare struct {
	id   string
	key  template.Key
	vm   VM
	proc Process
	ctl  Control
}

// spareDrivePrefix names a spare's placeholder drives in its directory
// (none of a machine's own files is named so); SpareName marks the
// directory of a spare (being restored or ready) no machine has taken.
const (
	spareDrivePrefix = "spare-drive"
	SpareName        = "spare"
)

// takeSpare reserves a spare whose shape cfg (a validated config with its
// image's volumes) predicts and returns it; nil when there is none. The
// caller creates the machine under the spare's ID; its start claims it
// (claimSpare) or ends it, and dropSpare ends one left unclaimed (a failed
// create, a machine destroyed before its first start).
func (m *Manager) takeSpare(cfg types.Config) *spare {
	if m.warm == nil || !m.opt.Spares || cfg.Guest.Cold || len(cfg.Mounts) > 0 || !cgroupV2(cfg.Init.CgroupVersion) {
		return nil
	}
	nics := 0
	if m.deps.Network != nil && !slices.ContainsFunc(cfg.Networks, func(e types.EndpointRequest) bool { return e.Network == network.NoNetwork }) {
		nics = max(1, len(cfg.Networks)) // none asked: the default network
	}
	m.warm.mu.Lock()
	var sp *spare
	for id, s := range m.warm.spares {
		k := s.key
		if k.VCPUs == cfg.Guest.CPUs && k.MemoryMiB == cfg.Guest.MemoryMB && k.Layout.NICs == nics && (cfg.VMM == "" || cfg.VMM == s.vm.Driver) {
			delete(m.warm.spares, id)
			m.warm.reserved[s.id] = s
			sp = s
			break
		}
	}
	m.warm.mu.Unlock()
	if sp != nil {
		m.fillSpare(sp.key, sp.vm, spareDelay) // the next one, of the same shape
	}
	return sp
}

// reservedSpare hands over the spare reserved for machine id, if any.
func (m *Manager) reservedSpare(id string) *spare {
	m.warm.mu.Lock()
	defer m.warm.mu.Unlock()
	sp := m.warm.reserved[id]
	delete(m.warm.reserved, id)
	return sp
}

// dropSpare ends the spare reserved for machine id that no start claimed
// (a failed create, a machine destroyed before its first start).
func (m *Manager) dropSpare(id string) {
	if m.warm == nil {
		return
	}
	if sp := m.reservedSpare(id); sp != nil {
		m.endSpare(sp, false)
	}
}

// endSpare ends sp's VMM and removes its files (its whole directory when
// no machine took its ID).
func (m *Manager) endSpare(sp *spare, dir bool) {
	_ = sp.ctl.Close()
	endProcess(m.ctx, sp.proc)
	if dir {
		_ = os.RemoveAll(sp.vm.Spec.Dir)
		return
	}
	removeSpareDrives(sp.vm.Spec.Dir)
}

// removeSpareDrives removes a spare's own files from dir, which a machine
// of the spare's ID has taken.
func removeSpareDrives(dir string) {
	_ = os.Remove(filepath.Join(dir, SpareName))
	paths, _ := filepath.Glob(filepath.Join(dir, spareDrivePrefix+"*"))
	for _, p := range paths {
		_ = os.Remove(p)
	}
}

// claimSpare makes sp machine vm: its drives and TAPs, then rc over the
// control channel sp holds. On failure sp is ended (vm's own files stay).
func (m *Manager) claimSpare(ctx context.Context, vm *VM, sp *spare, rc *guest.RunConfig) (_ Process, _ Control, err error) {
	t0 := time.Now()
	marker := filepath.Join(vm.Spec.Dir, restoringName)
	if err := os.WriteFile(marker, []byte(sp.key.ID()+"\n"), 0o600); err != nil {
		m.endSpare(sp, false)
		return nil, nil, err
	}
	defer func() {
		if err != nil {
			m.endSpare(sp, false)
			_ = os.Remove(marker)
		}
	}()
	rctx, cancel := context.WithTimeout(ctx, m.opt.RestoreTimeout)
	defer cancel()
	if err := m.deps.Warm.Claim(rctx, sp.vm, *vm); err != nil {
		return nil, nil, fmt.Errorf("claim spare: %w", err)
	}
	vm.Driver = sp.proc.Driver()
	t1 := time.Now()
	w, err := guest.NewWarmConfig(*rc, time.Now())
	if err == nil {
		w.DiskBytes, err = driveSizes(vm.Spec.Drives)
	}
	if err == nil {
		err = sp.ctl.(warmControl).Warm(rctx, w)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("spare guest: warm config: %w", err)
	}
	_ = os.Remove(marker)
	removeSpareDrives(vm.Spec.Dir)
	m.log.Debug("claimed spare", "machine", vm.Spec.ID, "template", sp.key.ID(), "claim", t1.Sub(t0), "config", time.Since(t1))
	return sp.proc, sp.ctl, nil
}

// spareDelay is how long after a warm start its key's next spare is
// restored: restoring costs a QEMU launch and a resume, CPU the machine
// just started would otherwise share while it starts its entrypoint.
const spareDelay = time.Second

// fillSpare restores, in the background and after delay, a spare of key
// (shape as vm) unless one is kept or being made.
func (m *Manager) fillSpare(key template.Key, vm VM, delay time.Duration) {
	if m.warm == nil || !m.opt.Spares {
		return
	}
	id := key.ID()
	m.warm.mu.Lock()
	if m.warm.spares[id] != nil || m.warm.filling[id] || m.ctx.Err() != nil {
		m.warm.mu.Unlock()
		return
	}
	m.warm.filling[id] = true
	m.wg.Add(1)
	m.warm.mu.Unlock()
	go func() {
		defer m.wg.Done()
		var sp *spare
		var err error
		select {
		case <-m.ctx.Done():
			err = m.ctx.Err()
		case <-time.After(delay):
			sp, err = m.newSpare(m.ctx, key, vm)
		}
		m.warm.mu.Lock()
		delete(m.warm.filling, id)
		closing := m.ctx.Err() != nil
		if err == nil && !closing {
			m.warm.spares[id] = sp
		}
		m.warm.mu.Unlock()
		if err == nil && !closing {
			m.log.Debug("spare ready", "spare", sp.id, "template", id)
		}
		switch {
		case err != nil && !closing:
			m.log.Warn("spare machine not restored", "template", id, "err", err)
		case err == nil && closing:
			m.endSpare(sp, true)
		}
	}()
}

// newSpare restores a spare of key: vm's shape under a fresh machine ID,
// placeholder drives, NICs waiting for TAPs.
func (m *Manager) newSpare(ctx context.Context, key template.Key, vm VM) (_ *spare, err error) {
	t, err := m.warm.store.Get(key)
	if err != nil {
		return nil, err
	}
	defer t.Close()
	id := newID()
	dir := m.dir(id)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			_ = os.RemoveAll(dir)
		}
	}()
	if err := os.WriteFile(filepath.Join(dir, SpareName), []byte(key.ID()+"\n"), 0o600); err != nil {
		return nil, err
	}
	s := vm.Spec
	svm := VM{Driver: vm.Driver, Spec: vmm.Spec{ID: id, Dir: dir, Cmdline: guest.KernelCmdline, VCPUs: s.VCPUs, MemoryMiB: s.MemoryMiB,
		Control: vmm.MachineControl(dir), ConsoleLog: filepath.Join(dir, "console.log"), NetNS: s.NetNS, Spare: true}}
	if svm.Spec.Drives, err = placeholderDrives(dir, spareDrivePrefix, s.Drives); err != nil {
		return nil, err
	}
	if err := formatPlaceholders(svm.Spec.Drives); err != nil {
		return nil, err
	}
	for i, n := range s.NICs {
		svm.Spec.NICs = append(svm.Spec.NICs, vmm.NIC{ID: n.ID, MAC: guest.TemplateMAC(i)})
	}
	svm, skey, err := m.warmShape(ctx, svm)
	if err != nil {
		return nil, err
	}
	if skey.ID() != key.ID() {
		return nil, fmt.Errorf("spare of template %s has key %s (the kernel or ferry-init changed)", key.ID(), skey.ID())
	}
	proc, err := m.deps.Warm.StartRestore(ctx, svm, t.State, t.RAM)
	if err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	defer func() {
		if err != nil {
			endProcess(ctx, proc)
		}
	}()
	svm.Driver = proc.Driver()
	rctx, cancel := context.WithTimeout(ctx, m.opt.RestoreTimeout)
	defer cancel()
	if err := m.deps.Warm.Resume(rctx, svm); err != nil {
		return nil, fmt.Errorf("resume: %w", err)
	}
	ctl, err := m.connectUntil(rctx, svm)
	if err != nil {
		return nil, fmt.Errorf("restored guest: %w", err)
	}
	if r, ok := ctl.(rehearser); ok {
		t0 := time.Now()
		w, err := rehearsalConfig(svm, time.Now())
		if err == nil {
			err = r.Rehearse(rctx, w)
		}
		if err != nil {
			m.log.Debug("spare did not rehearse a start", "template", key.ID(), "err", err)
		} else {
			m.log.Debug("spare rehearsed a start", "template", key.ID(), "took", time.Since(t0))
		}
	}
	return &spare{id: id, key: key, vm: svm, proc: proc, ctl: ctl}, nil
}

// cgroupV2 reports whether a machine's guest uses cgroup v2 alone. A spare
// rehearsed the app cgroup on v2 with the memory controller; a memory
// cgroup it removed may linger (dying) and keep that controller from
// moving to a v1 hierarchy, so a v1 or hybrid machine restores instead.
func cgroupV2(version string) bool { return version == "" || version == guest.CgroupV2 }

// rehearsalConfig is the warm config a spare rehearses a start with: a
// machine of vm's shape that does not exist, its root on vm's placeholder
// drives, each NIC (by its template MAC) on TEST-NET addresses of no
// network (192.0.2.0/24 in /28s, 2001:db8::/32 in /64s, a gateway on each).
func rehearsalConfig(vm VM, now time.Time) (*guest.WarmConfig, error) {
	mc := &types.Machine{ID: vm.Spec.ID, Name: "rehearsal", Config: types.Config{Env: map[string]string{"FERRY_REHEARSAL": "1"}}}
	root := guest.Root{Mode: guest.RootSingle, Device: "/dev/vda"}
	if len(vm.Spec.Drives) > 1 && vm.Spec.Drives[0].ReadOnly {
		root = guest.Root{Mode: guest.RootOverlay, Device: "/dev/vda", Scratch: "/dev/vdb"}
	}
	att := &network.Attachment{MachineID: mc.ID, DNS: []string{"192.0.2.1"}, Search: []string{"rehearsal.internal"}}
	for i := range vm.Spec.NICs {
		v4 := netip.AddrFrom4([4]byte{192, 0, 2, byte(16*i + 1)})
		v6 := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, byte(i), 15: 1})
		att.Endpoints = append(att.Endpoints, network.Endpoint{Network: "rehearsal", MAC: guest.TemplateMAC(i),
			IPv4: netip.PrefixFrom(v4.Next(), 28), Gateway: v4, IPv6: netip.PrefixFrom(v6.Next(), 64), Gateway6: v6})
	}
	mc.Network = networkView(att)
	img := guest.Image{Cmd: []string{"true"}, Env: []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}}
	rc := runConfig(mc, img, root, att, nil)
	if err := rc.Validate(); err != nil {
		return nil, err
	}
	w, err := guest.NewWarmConfig(*rc, now)
	if err != nil {
		return nil, err
	}
	if w.DiskBytes, err = driveSizes(vm.Spec.Drives); err != nil {
		return nil, err
	}
	return w, nil
}

// formatPlaceholders gives a spare's placeholder drives small ext4 file
// systems (the read-only one without a journal, as a base has none), so
// its rehearsal mounts a root as a start does (initd's rehearseRoot).
func formatPlaceholders(drives []vmm.Drive) error {
	for _, d := range drives {
		f, err := os.OpenFile(d.Path, os.O_RDWR, 0)
		if err != nil {
			return err
		}
		o := mkext4.Options{Label: "ferry-spare"}
		if d.ReadOnly {
			o.JournalBlocks = -1
		}
		err = mkext4.Format(f, placeholderSize, o)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("placeholder %s: %w", d.ID, err)
		}
	}
	return nil
}

// closeSpares ends every spare (Close): kept ones with their directories,
// reserved ones (a machine created, not started yet) without.
func (m *Manager) closeSpares() {
	if m.warm == nil {
		return
	}
	m.warm.mu.Lock()
	kept, reserved := m.warm.spares, m.warm.reserved
	m.warm.spares, m.warm.reserved = map[string]*spare{}, map[string]*spare{}
	m.warm.mu.Unlock()
	for _, sp := range kept {
		m.endSpare(sp, true)
	}
	for _, sp := range reserved {
		m.endSpare(sp, false) // a machine created to start later has the directory
	}
}
