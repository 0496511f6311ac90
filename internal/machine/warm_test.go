package machine

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/ferryvm/ferry/internal/api/types"
	"github.com/ferryvm/ferry/internal/vmm"
	"github.com/ferryvm/ferry/internal/vmm/template"
)

// failingWarm is a Warm whose template machines never start.
type failingWarm struct{ builds atomic.Int32 }

func (f *failingWarm) Key(context.Context, VM) (template.Key, error) {
	return template.Key{VMM: "qemu", VMMVersion: "7.2", Accel: "tcg", Kernel: "k", Init: "i", VCPUs: 1, MemoryMiB: 256,
		Layout: template.Layout{Drives: []template.DriveShape{{ReadOnly: true}, {}}, NICs: 1, Control: "serial", QMP: true}}, nil
}
func (f *failingWarm) StartTemplate(context.Context, VM, *os.File) (Process, error) {
	f.builds.Add(1)
	return nil, errors.New("no template for you")
}
func (f *failingWarm) Save(context.Context, VM, *os.File) error { return errors.New("unused") }
func (f *failingWarm) StartRestore(context.Context, VM, string, *os.File) (Process, error) {
	return nil, errors.New("unused")
}
func (f *failingWarm) Resume(context.Context, VM) error    { return errors.New("unused") }
func (f *failingWarm) Claim(context.Context, VM, VM) error { return errors.New("unused") }

// A template whose build failed is not built again by the next starts of
// its shape (each would pay a boot for nothing): they boot cold at once,
// each saying why.
func TestFailedTemplateBuildIsNotRetried(t *testing.T) {
	w := newWorld()
	fw := &failingWarm{}
	dir := t.TempDir()
	db, err := bolt.Open(filepath.Join(dir, "meta.db"), 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	m, err := New(db, Deps{Images: w, Rootfs: w, Network: fakeNet{w}, Boot: fakeBoot{}, Hypervisor: w, Warm: fw},
		Options{MachinesDir: filepath.Join(dir, "machines"), TemplatesDir: filepath.Join(dir, "templates"), StopTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close(); db.Close() })
	if err := os.MkdirAll(filepath.Join(dir, "machines"), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"a", "b", "c"} {
		if _, err := m.Create(ctx, "", types.CreateRequest{Name: name, Config: types.Config{Image: "busybox"}}); err != nil {
			t.Fatal(err)
		}
		got, err := m.Wait(ctx, "", name, types.StateStopped, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if got.Warm || got.LastExit == nil {
			t.Errorf("%s: warm %v, last exit %+v: want a cold boot that ran", name, got.Warm, got.LastExit)
		}
		cold := false
		for _, e := range got.Events {
			cold = cold || e.Type == "cold_boot"
		}
		if !cold {
			t.Errorf("%s: no cold_boot event: %+v", name, got.Events)
		}
	}
	if n := fw.builds.Load(); n != 1 {
		t.Errorf("template builds = %d, want 1", n)
	}
	if w.starts != 3 {
		t.Errorf("cold boots = %d, want 3", w.starts)
	}
}

// A restore tells the guest each drive's real size, in drive order; a
// drive that is not a regular file (or is empty) makes it send none, so
// the guest re-probes every disk.
func TestDriveSizes(t *testing.T) {
	dir := t.TempDir()
	base, scratch := filepath.Join(dir, "base"), filepath.Join(dir, "scratch")
	for p, n := range map[string]int64{base: 3 << 20, scratch: 64 << 20} {
		if err := os.WriteFile(p, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(p, n); err != nil {
			t.Fatal(err)
		}
	}
	got, err := driveSizes([]vmm.Drive{{ID: "root", Path: base, ReadOnly: true}, {ID: "scratch", Path: scratch}})
	if err != nil || len(got) != 2 || got[0] != 3<<20 || got[1] != 64<<20 {
		t.Errorf("sizes = %v, %v", got, err)
	}
	if got, err := driveSizes([]vmm.Drive{{ID: "root", Path: base}, {ID: "dev", Path: "/dev/null"}}); err != nil || got != nil {
		t.Errorf("with a device: %v, %v; want none", got, err)
	}
	if _, err := driveSizes([]vmm.Drive{{ID: "gone", Path: filepath.Join(dir, "missing")}}); err == nil {
		t.Error("a missing drive gave sizes")
	}
}
