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
func (f *failingWarm) Resume(context.Context, VM) error { return errors.New("unused") }

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
