package machine

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	bolt "go.etcd.io/bbolt"

	"github.com/ferryvm/ferry/internal/errdefs"
	"github.com/ferryvm/ferry/internal/guest"
	"github.com/ferryvm/ferry/internal/image"
	"github.com/ferryvm/ferry/internal/kernel"
	"github.com/ferryvm/ferry/internal/network"
	"github.com/ferryvm/ferry/internal/rootfs"
)

// world is a fake host: images, disks, network and VMMs as maps, so tests
// can inventory what is held.
type world struct {
	mu    sync.Mutex
	disks map[string]bool
	taps  map[string]bool
	procs map[string]*fakeProc // live VMMs by machine id
	last  map[string]*fakeProc // latest VMM by machine id, live or not
	exits []int                // exit codes the next guests return, in order
	// run, when set, answers exec requests (default: print argv, exit 7);
	// refuse, when set, is asked before it (see fakeCtl).
	refuse   func() error
	run      func(req guest.ExecRequest, io guest.ExecIO) guest.ExitStatus
	hold     bool // guests run until signalled
	failVMM  error
	starts   int
	ports    []network.Port        // what the last Attach was asked to publish
	attached network.AttachRequest // the last Attach
	renamed  []string              // Rename calls, "id=name"
	vms      map[string]VM         // the last VM started, by machine id
}

func newWorld() *world {
	return &world{disks: map[string]bool{}, taps: map[string]bool{}, procs: map[string]*fakeProc{}, last: map[string]*fakeProc{}, vms: map[string]VM{}}
}

func (w *world) Ensure(_ context.Context, ref string, _ ...image.PullOption) (v1.Image, v1.Hash, error) {
	if ref == "missing" {
		return nil, v1.Hash{}, fmt.Errorf("no such image: %w", errdefs.ErrNotFound)
	}
	c := v1.Config{Cmd: []string{"/bin/true"}}
	if ref == "with-volume" { // VOLUME /state
		c.Volumes = map[string]struct{}{"/state": {}}
	}
	if ref == "with-health" { // HEALTHCHECK --interval=10ms --retries=1 CMD check
		c.Healthcheck = &v1.HealthConfig{Test: []string{"CMD", "check"}, Interval: 10 * time.Millisecond, Retries: 1}
	}
	img, err := mutate.Config(empty.Image, c)
	if err != nil {
		return nil, v1.Hash{}, err
	}
	d, err := img.Digest()
	return img, d, err
}

func (w *world) PrepareImage(_ context.Context, id string, _ v1.Hash) (rootfs.Disks, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.disks[id] = true
	return rootfs.Disks{Mode: rootfs.ModeOverlay, Base: "/base.ext4", Writable: "/" + id + ".ext4"}, nil
}

func (w *world) Release(_ context.Context, id string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.disks, id)
	delete(w.taps, id)
	return nil
}

// View refuses: a view runs the archive helper on the host's files.
func (w *world) View(context.Context, string, bool, func() error) error {
	return fmt.Errorf("no rootfs view in the fakes: %w", errdefs.ErrUnavailable)
}

func (w *world) Reconcile(_ context.Context, keep []string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	k := map[string]bool{}
	for _, id := range keep {
		k[id] = true
	}
	for id := range w.disks {
		if !k[id] {
			delete(w.disks, id)
		}
	}
	return nil
}

// fakeNet shares the world but releases only TAPs.
type fakeNet struct{ w *world }

func (n fakeNet) Attach(_ context.Context, req network.AttachRequest) (*network.Attachment, error) {
	n.w.mu.Lock()
	defer n.w.mu.Unlock()
	n.w.taps[req.MachineID] = true
	n.w.ports = req.Ports
	n.w.attached = req
	return &network.Attachment{Endpoints: []network.Endpoint{{Tap: "tap" + req.MachineID[:4], MAC: "02:00:00:00:00:01",
		IPv4: netip.MustParsePrefix("10.0.0.2/24"), Gateway: netip.MustParseAddr("10.0.0.1")}}, Ports: req.Ports}, nil
}
func (n fakeNet) Rename(_ context.Context, id, name string) error {
	n.w.mu.Lock()
	defer n.w.mu.Unlock()
	n.w.renamed = append(n.w.renamed, id+"="+name)
	return nil
}
func (n fakeNet) Release(_ context.Context, id string) error {
	n.w.mu.Lock()
	defer n.w.mu.Unlock()
	delete(n.w.taps, id)
	return nil
}
func (n fakeNet) Reconcile(_ context.Context, keep []string) error {
	n.w.mu.Lock()
	defer n.w.mu.Unlock()
	k := map[string]bool{}
	for _, id := range keep {
		k[id] = true
	}
	for id := range n.w.taps {
		if !k[id] {
			delete(n.w.taps, id)
		}
	}
	return nil
}

// fakeBoot checks the run config (none: the shared initramfs of a warm
// start) and names the files a start would boot.
type fakeBoot struct{}

func (fakeBoot) Prepare(_ context.Context, dir string, files map[string][]byte) (kernel.Boot, error) {
	if files == nil {
		return kernel.Boot{Kernel: "/vmlinux", Initrd: "/shared.cpio"}, nil
	}
	if _, err := guest.ParseConfig(files[guest.ConfigPath]); err != nil {
		return kernel.Boot{}, err
	}
	return kernel.Boot{Kernel: "/vmlinux", Initrd: filepath.Join(dir, "initrd.cpio")}, nil
}

// fakeProc is a VMM whose guest exits with code (or runs until signalled).
type fakeProc struct {
	id   string
	pid  int
	code int
	sig  chan syscall.Signal
	dead chan struct{}
	once sync.Once
	exit *guest.ExitStatus
}

func (p *fakeProc) PID() int { return p.pid }
func (p *fakeProc) Wait(ctx context.Context) error {
	select {
	case <-p.dead:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
func (p *fakeProc) Kill() error {
	p.once.Do(func() { close(p.dead) })
	return nil
}
func (p *fakeProc) Emulated() bool { return true }
func (p *fakeProc) Driver() string { return "fake" }

func (w *world) Start(_ context.Context, vm VM) (Process, error) {
	spec := vm.Spec
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.failVMM != nil {
		return nil, w.failVMM
	}
	w.starts++
	w.vms[spec.ID] = vm
	p := &fakeProc{id: spec.ID, pid: 1000 + w.starts, sig: make(chan syscall.Signal, 1), dead: make(chan struct{})}
	hold := w.hold
	if len(w.exits) > 0 {
		p.code, w.exits = w.exits[0], w.exits[1:]
	}
	w.procs[spec.ID] = p
	w.last[spec.ID] = p
	go func() {
		if hold {
			select {
			case s := <-p.sig:
				p.exit = &guest.ExitStatus{Code: 128 + int(s), Signal: int(s)}
			case <-p.dead:
			}
		} else {
			time.Sleep(10 * time.Millisecond)
			p.exit = &guest.ExitStatus{Code: p.code}
		}
		w.mu.Lock()
		if w.procs[spec.ID] == p {
			delete(w.procs, spec.ID)
		}
		w.mu.Unlock()
		p.Kill()
	}()
	return p, nil
}

func (w *world) Adopt(_ context.Context, vm VM) (Process, error) {
	spec := vm.Spec
	w.mu.Lock()
	defer w.mu.Unlock()
	if p, ok := w.procs[spec.ID]; ok {
		return p, nil
	}
	return nil, fmt.Errorf("no vmm: %w", errdefs.ErrNotFound)
}

func (w *world) Connect(_ context.Context, vm VM) (Control, error) {
	spec := vm.Spec
	if vm.Driver != "fake" {
		// The guest is reached through the driver that started its VMM.
		return nil, fmt.Errorf("connect through driver %q, not the one that ran: %w", vm.Driver, errors.ErrUnsupported)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	p, ok := w.last[spec.ID]
	if !ok {
		return nil, fmt.Errorf("no vmm: %w", errdefs.ErrUnavailable)
	}
	return &fakeCtl{p: p, run: w.run, refuse: w.refuse}, nil
}

func (w *world) Reap(_ context.Context, keep []string) ([]string, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	k := map[string]bool{}
	for _, id := range keep {
		k[id] = true
	}
	var out []string
	for id, p := range w.procs {
		if !k[id] {
			p.Kill()
			delete(w.procs, id)
			out = append(out, id)
		}
	}
	return out, nil
}

type fakeCtl struct {
	p   *fakeProc
	run func(req guest.ExecRequest, io guest.ExecIO) guest.ExitStatus
	// refuse, when set, is asked first: an error it returns is init's
	// reply to the exec (a *guest.RemoteError).
	refuse func() error
}

func (c *fakeCtl) Wait(ctx context.Context) (guest.ExitStatus, error) {
	select {
	case <-c.p.dead:
		if c.p.exit == nil {
			return guest.ExitStatus{}, fmt.Errorf("eof")
		}
		return *c.p.exit, nil
	case <-ctx.Done():
		return guest.ExitStatus{}, ctx.Err()
	}
}
func (c *fakeCtl) SignalEntrypoint(_ context.Context, s syscall.Signal) error {
	select {
	case c.p.sig <- s:
	default:
	}
	return nil
}
func (c *fakeCtl) Run(ctx context.Context, req guest.ExecRequest, io guest.ExecIO) (guest.ExitStatus, error) {
	if c.refuse != nil {
		if err := c.refuse(); err != nil {
			return guest.ExitStatus{}, err
		}
	}
	if c.run != nil {
		done := make(chan guest.ExitStatus, 1)
		go func() { done <- c.run(req, io) }()
		select {
		case st := <-done:
			return st, nil
		case <-ctx.Done():
			return guest.ExitStatus{}, ctx.Err()
		}
	}
	fmt.Fprintln(io.Stdout, req.Argv)
	return guest.ExitStatus{Code: 7}, nil
}
func (c *fakeCtl) Close() error { return nil }

func (w *world) inventory() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return fmt.Sprintf("disks=%d taps=%d vmms=%d", len(w.disks), len(w.taps), len(w.procs))
}

// newManager opens a Manager over w with a fresh db in dir.
func newManager(t *testing.T, w *world, dir string) *Manager {
	t.Helper()
	db, err := bolt.Open(filepath.Join(dir, "meta.db"), 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	m, err := New(db, Deps{Images: w, Rootfs: w, Network: fakeNet{w}, Boot: fakeBoot{}, Hypervisor: w},
		Options{MachinesDir: filepath.Join(dir, "machines"), StopTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close(); db.Close() })
	if err := os.MkdirAll(filepath.Join(dir, "machines"), 0o700); err != nil {
		t.Fatal(err)
	}
	return m
}
