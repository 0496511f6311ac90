package machine

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/ferryvm/ferry/internal/api/types"
	"github.com/ferryvm/ferry/internal/errdefs"
	"github.com/ferryvm/ferry/internal/guest"
	"github.com/ferryvm/ferry/internal/testutil/prereq"
	"github.com/ferryvm/ferry/internal/volume"
)

type remoteCtx struct{}

// newVolumeManager is newManager with a real volume store beside it and a
// bind policy that refuses remote callers outside allowed.
func newVolumeManager(t *testing.T, w *world, allowed ...string) (*Manager, *volume.Store) {
	t.Helper()
	dir := t.TempDir()
	db, err := bolt.Open(filepath.Join(dir, "meta.db"), 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	vs, err := volume.Open(ctx, filepath.Join(dir, "volumes"), db, volume.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	remote := func(c context.Context) bool { return c.Value(remoteCtx{}) != nil }
	m, err := New(db, Deps{Images: w, Rootfs: w, Network: fakeNet{w}, Boot: fakeBoot{}, Hypervisor: w, Volumes: vs},
		Options{MachinesDir: filepath.Join(dir, "machines"), StopTimeout: 2 * time.Second, BindAllowed: RemoteBindPolicy(remote, allowed)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close(); db.Close() })
	return m, vs
}

var plain = func() *bool { f := false; return &f }()

// Volumes are attached from a machine's creation to its removal and reach
// the VMM and the guest as drives, shares and mounts; a named volume is
// created on first use, an image's VOLUME gets an anonymous one, a second
// writer is refused without leaving anything, and removal keeps named
// volumes (and anonymous ones unless asked).
func TestMountsReachTheVMAndOutliveTheMachine(t *testing.T) {
	prereq.Tool(t, "cryptsetup") // the image's anonymous volume is encrypted
	w := newWorld()
	w.hold = true // guests run until stopped
	m, vs := newVolumeManager(t, w)
	host := t.TempDir()
	cfg := types.Config{Image: "with-volume", Mounts: []types.Mount{
		{Volume: "data", Path: "/data", Encrypted: plain},
		{Source: host, Path: "/data/host", ReadOnly: true},
		{Type: types.MountTmpfs, Path: "/t", SizeMB: 8},
	}}
	a, err := m.Create(ctx, "", types.CreateRequest{Name: "a", Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	data, err := vs.Get(ctx, "default", "data")
	if err != nil || data.Writer() != a.ID || data.Encrypted {
		t.Fatalf("volume data: %+v, %v; want created plain and held by %s", data, err, a.ID)
	}
	all, _ := vs.List(ctx, "default")
	if len(all) != 2 || !all[0].Anonymous && !all[1].Anonymous {
		t.Fatalf("volumes %+v: want data and an anonymous one for VOLUME /state", all)
	}
	vm := w.vms[a.ID]
	if n := len(vm.Spec.Drives); n != 4 || vm.Spec.Drives[2].Path != vs.DataPath(data.ID) || vm.Spec.Drives[2].ReadOnly {
		t.Fatalf("drives %+v: want root, scratch, data (read-write) and the anonymous volume", vm.Spec.Drives)
	}
	if sh := vm.Spec.Shares; len(sh) != 1 || sh[0].Source != host || !sh[0].ReadOnly {
		t.Fatalf("shares %+v: want %s read-only", sh, host)
	}
	got, err := m.Get("", "a")
	if err != nil || got.Config.Mounts[3].Volume == "" || got.Config.Mounts[3].Path != "/state" {
		t.Fatalf("recorded mounts %+v: want the anonymous volume named", got.Config.Mounts)
	}

	// The guest's mounts: parents first, the volume as /dev/vdc ext4.
	rc := runConfig(got, guest.Image{Cmd: []string{"true"}}, guest.Root{Mode: guest.RootOverlay, Device: "/dev/vda", Scratch: "/dev/vdb"}, nil, nil)
	plan, err := m.planMounts(ctx, got, 2)
	if err != nil {
		t.Fatal(err)
	}
	rc.Mounts = plan.Guest
	if err := rc.Validate(); err != nil {
		t.Fatal(err)
	}
	want := []string{"/data /dev/vdc ext4", "/t tmpfs tmpfs", "/state /dev/vdd ext4", "/data/host fs0 virtiofs"}
	for i, g := range plan.Guest {
		if s := g.Target + " " + g.Source + " " + g.FSType; i >= len(want) || s != want[i] {
			t.Errorf("guest mount %d = %q, want %q", i, s, want[i])
		}
	}

	// A second writer gets a conflict and leaves nothing behind.
	_, err = m.Create(ctx, "", types.CreateRequest{Name: "second", Config: types.Config{Image: "with-volume", Mounts: []types.Mount{{Volume: "data", Path: "/d"}}}})
	if !errors.Is(err, errdefs.ErrConflict) {
		t.Fatalf("second writer: %v, want a conflict", err)
	}
	if _, err := m.Get("", "second"); err == nil {
		t.Error("the refused machine exists")
	}
	if all, _ := vs.List(ctx, "default"); len(all) != 2 {
		t.Errorf("the refused machine left volumes: %+v", all)
	}
	// Readers may share a volume nobody writes: not this one.
	if _, err := m.Create(ctx, "", types.CreateRequest{Name: "r", Config: types.Config{Image: "busybox", Mounts: []types.Mount{{Volume: "data", Path: "/d", ReadOnly: true}}}}); !errors.Is(err, errdefs.ErrConflict) {
		t.Fatalf("reader beside a writer: %v, want a conflict", err)
	}

	// Stopped, a holds no claim: another machine may write (Docker's
	// model: compose makes a service's new container before removing the
	// old one), and a cannot start beside it.
	if _, err := m.Stop(ctx, "", "a", StopOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Create(ctx, "", types.CreateRequest{Name: "next", Config: types.Config{Image: "busybox", Mounts: []types.Mount{{Volume: "data", Path: "/d"}}}}); err != nil {
		t.Fatalf("a writer once the first one stopped: %v", err)
	}
	if _, err := m.Start(ctx, "", "a"); !errors.Is(err, errdefs.ErrConflict) {
		t.Fatalf("start beside the new writer: %v, want a conflict", err)
	}
	if err := vs.Remove(ctx, "default", "data"); !errors.Is(err, errdefs.ErrConflict) {
		t.Fatalf("remove of a volume machines mount: %v, want a conflict", err)
	}
	if err := m.Destroy(ctx, "", "next", true); err != nil {
		t.Fatal(err)
	}
	if err := m.Destroy(ctx, "", "a", true); err != nil {
		t.Fatal(err)
	}
	all, _ = vs.List(ctx, "default")
	if len(all) != 2 || len(all[0].Attachments)+len(all[1].Attachments) != 0 {
		t.Fatalf("after rm: %+v; want both volumes kept, unattached", all)
	}

	// Two readers, then rm -v of a machine with an anonymous volume.
	for _, n := range []string{"r1", "r2"} {
		if _, err := m.Create(ctx, "", types.CreateRequest{Name: n, Config: types.Config{Image: "with-volume", Mounts: []types.Mount{{Volume: "data", Path: "/d", ReadOnly: true}}}}); err != nil {
			t.Fatalf("reader %s: %v", n, err)
		}
	}
	if err := m.DestroyWithVolumes(ctx, "", "r1", true, true); err != nil {
		t.Fatal(err)
	}
	all, _ = vs.List(ctx, "default")
	if len(all) != 3 { // data, a's anonymous volume, r2's
		t.Fatalf("after rm -v r1: %+v; want data and two anonymous volumes", all)
	}
}

// Bind mounts: a host privilege for local callers (remote ones only under
// the allowed paths), an existing directory, and not under Firecracker.
func TestBindMountsChecked(t *testing.T) {
	w := newWorld()
	allowed := t.TempDir()
	m, _ := newVolumeManager(t, w, allowed)
	other := t.TempDir()
	bind := func(c context.Context, src, vmmName string) error {
		_, err := m.Create(c, "", types.CreateRequest{Config: types.Config{Image: "busybox", VMM: vmmName,
			Mounts: []types.Mount{{Type: types.MountBind, Source: src, Path: "/b"}}}})
		return err
	}
	remote := context.WithValue(ctx, remoteCtx{}, true)
	if err := bind(remote, other, ""); !errors.Is(err, errdefs.ErrUnauthorized) {
		t.Errorf("remote bind of %s: %v, want unauthorized", other, err)
	}
	sub := filepath.Join(allowed, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := bind(remote, sub, ""); err != nil {
		t.Errorf("remote bind under an allowed path: %v", err)
	}
	if err := bind(remote, allowed+"-not", ""); !errors.Is(err, errdefs.ErrUnauthorized) {
		t.Errorf("remote bind of a sibling of an allowed path: %v, want unauthorized", err)
	}
	if err := bind(ctx, other, ""); err != nil {
		t.Errorf("local bind: %v", err)
	}
	if err := bind(ctx, filepath.Join(other, "missing"), ""); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("bind of a missing directory: %v, want invalid argument", err)
	}
	if err := bind(ctx, other, "firecracker"); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("bind under firecracker: %v, want invalid argument", err)
	}
	// No VMM named: QEMU, whatever the default.
	mc, err := m.Create(ctx, "", types.CreateRequest{Config: types.Config{Image: "busybox",
		Mounts: []types.Mount{{Type: types.MountBind, Source: other, Path: "/b"}}}})
	if err != nil || mc.Config.VMM != "qemu" {
		t.Errorf("bind mount with no VMM named: vmm %q, %v; want qemu", mc.Config.VMM, err)
	}
}

func TestValidateMounts(t *testing.T) {
	for _, tc := range []struct {
		m    types.Mount
		okay bool
	}{
		{types.Mount{Path: "/t"}, true},
		{types.Mount{Volume: "data", Path: "/d"}, true},
		{types.Mount{Volume: "vol_0123", Path: "/d"}, true},
		{types.Mount{Type: types.MountVolume, Path: "/d"}, true}, // anonymous
		{types.Mount{Volume: "../x", Path: "/d"}, false},
		{types.Mount{Volume: "a/b", Path: "/d"}, false},
		{types.Mount{Volume: "data", Path: "/"}, false},
		{types.Mount{Volume: "data", Path: "rel"}, false},
		{types.Mount{Volume: "data", Path: "/d", SizeMB: 1}, false},
		{types.Mount{Source: "rel/dir", Path: "/d"}, false},
		{types.Mount{Type: types.MountTmpfs, Source: "/x", Path: "/d"}, false},
		{types.Mount{Type: "nfs", Path: "/d"}, false},
	} {
		err := validateMounts([]types.Mount{tc.m})
		if (err == nil) != tc.okay || err != nil && !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("%+v: %v, want ok=%v", tc.m, err, tc.okay)
		}
	}
	if err := validateMounts([]types.Mount{{Path: "/d"}, {Volume: "v", Path: "/d/"}}); err == nil {
		t.Error("one path mounted twice was accepted")
	}
}

// An update keeps the image's anonymous volume, attaches what the new
// config mounts and detaches what it no longer does.
func TestUpdateMounts(t *testing.T) {
	prereq.Tool(t, "cryptsetup")
	w := newWorld()
	m, vs := newVolumeManager(t, w)
	mc, err := m.Create(ctx, "", types.CreateRequest{Name: "u", Config: types.Config{Image: "with-volume",
		Mounts: []types.Mount{{Volume: "one", Path: "/one", Encrypted: plain}}}})
	if err != nil {
		t.Fatal(err)
	}
	anon := mc.Config.Mounts[1].Volume
	up, err := m.Update(ctx, "", "u", types.Config{Image: "with-volume", Mounts: []types.Mount{{Volume: "two", Path: "/two", Encrypted: plain}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(up.Config.Mounts) != 2 || up.Config.Mounts[1].Volume != anon {
		t.Fatalf("mounts after update %+v: want two and the same anonymous volume %s", up.Config.Mounts, anon)
	}
	for name, want := range map[string]string{"one": "", "two": mc.ID, anon: mc.ID} {
		v, err := vs.Get(ctx, "default", name)
		if err != nil || v.Writer() != want {
			t.Errorf("volume %s: writer %q, %v; want %q", name, v.Writer(), err, want)
		}
	}
}

// After a crash: attachments of machines that no longer exist are dropped,
// and holds of machines that no longer run are let go.
func TestReconcileVolumes(t *testing.T) {
	w := newWorld()
	m, vs := newVolumeManager(t, w)
	if _, err := vs.Create(ctx, volume.CreateRequest{App: "default", Name: "v", Encrypted: plain}); err != nil {
		t.Fatal(err)
	}
	mc, err := m.Create(ctx, "", types.CreateRequest{Name: "stopped", SkipLaunch: true, Config: types.Config{Image: "busybox",
		Mounts: []types.Mount{{Volume: "v", Path: "/v"}}}})
	if err != nil {
		t.Fatal(err)
	}
	// The records a killed daemon left: a hold by the machine, which is
	// not running, and a reference by a machine that was never recorded.
	if _, err := vs.Attach(ctx, "default", "v", mc.ID, false); err != nil {
		t.Fatal(err)
	}
	if err := vs.Reference(ctx, "default", "v", "ghost", true); err != nil {
		t.Fatal(err)
	}
	if err := m.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	v, err := vs.Get(ctx, "default", "v")
	if err != nil || len(v.Attachments) != 1 || v.Attachments[0].Machine != mc.ID || v.Attachments[0].Active {
		t.Fatalf("after reconcile: %+v, %v; want only %s's reference", v.Attachments, err, mc.ID)
	}
}
