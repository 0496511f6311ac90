package template

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ferryvm/ferry/internal/errdefs"
	"github.com/ferryvm/ferry/internal/testutil/prereq"
)

func testKey() Key {
	return Key{
		VMM: "qemu", VMMVersion: "7.2.22", Accel: "tcg",
		Kernel: "k1", Init: "i1", VCPUs: 1, MemoryMiB: 256,
		Layout: Layout{Drives: []DriveShape{{ReadOnly: true}, {}}, NICs: 1, Control: "serial", QMP: true},
	}
}

func writer(b []byte) func(context.Context, *os.File) error {
	return func(_ context.Context, f *os.File) error { _, err := f.Write(b); return err }
}

func open(t *testing.T) *Store {
	t.Helper()
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// The ID changes with every field a saved guest depends on.
func TestKeyIDCoversEveryField(t *testing.T) {
	base := testKey()
	muts := map[string]func(*Key){
		"vmm":         func(k *Key) { k.VMM = "firecracker" },
		"vmm version": func(k *Key) { k.VMMVersion = "8.2.0" },
		"accel":       func(k *Key) { k.Accel = "kvm" },
		"kernel":      func(k *Key) { k.Kernel = "k2" },
		"init":        func(k *Key) { k.Init = "i2" },
		"cmdline":     func(k *Key) { k.Cmdline = "quiet" },
		"vcpus":       func(k *Key) { k.VCPUs = 2 },
		"memory":      func(k *Key) { k.MemoryMiB = 512 },
		"drive ro":    func(k *Key) { k.Layout.Drives[1].ReadOnly = true },
		"drives":      func(k *Key) { k.Layout.Drives = append(k.Layout.Drives, DriveShape{}) },
		"nics":        func(k *Key) { k.Layout.NICs = 0 },
		"control":     func(k *Key) { k.Layout.Control = "vsock" },
		"acpi":        func(k *Key) { k.Layout.ACPI = true },
		"qmp":         func(k *Key) { k.Layout.QMP = false },
	}
	seen := map[string]string{base.ID(): "base"}
	for name, mut := range muts {
		k := testKey()
		mut(&k)
		id := k.ID()
		if other, dup := seen[id]; dup {
			t.Errorf("%s: same ID as %s", name, other)
		}
		seen[id] = name
	}
	if testKey().ID() != base.ID() {
		t.Error("equal keys give different IDs")
	}
}

func TestKeyValidate(t *testing.T) {
	for name, mut := range map[string]func(*Key){
		"no vmm version": func(k *Key) { k.VMMVersion = "" },
		"no kernel":      func(k *Key) { k.Kernel = "" },
		"no init":        func(k *Key) { k.Init = "" },
		"no vcpus":       func(k *Key) { k.VCPUs = 0 },
		"no memory":      func(k *Key) { k.MemoryMiB = 0 },
		"no control":     func(k *Key) { k.Layout.Control = "" },
	} {
		k := testKey()
		mut(&k)
		if err := k.Validate(); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("%s: Validate = %v", name, err)
		}
		if _, err := open(t).Put(context.Background(), k, writer([]byte("x")), nil); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("%s: Put = %v", name, err)
		}
	}
}

func TestPutGet(t *testing.T) {
	s := open(t)
	k := testKey()
	if _, err := s.Get(k); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("Get before Put = %v, want not found", err)
	}
	state := bytes.Repeat([]byte("guest memory "), 1000)
	put, err := s.Put(context.Background(), k, writer(state), nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(k)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != put.State || got.Size != int64(len(state)) || got.Key.Kernel != "k1" {
		t.Errorf("Get = %+v, Put = %+v", got, put)
	}
	if b, _ := os.ReadFile(got.State); !bytes.Equal(b, state) {
		t.Error("state content differs")
	}
	// A fresh store (another daemon run) checks the checksum again.
	s2, err := Open(s.Dir())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s2.Get(k); err != nil {
		t.Fatal(err)
	}
	// Another kernel is another template.
	k2 := testKey()
	k2.Kernel = "k2"
	if _, err := s.Get(k2); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("Get of a new kernel's key = %v, want not found", err)
	}
	// A rebuild replaces the old one.
	if _, err := s.Put(context.Background(), k, writer([]byte("rebuilt")), nil); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Get(k); err != nil || got.Size != int64(len("rebuilt")) {
		t.Errorf("after rebuild: %+v, %v", got, err)
	}
	assertNoTemps(t, s)
}

// Every kind of damage is detected, the template removed, and the caller
// told it is missing (so it rebuilds or boots cold).
func TestDamagedTemplates(t *testing.T) {
	for name, damage := range map[string]func(t *testing.T, tp *Template){
		"flipped byte": func(t *testing.T, tp *Template) {
			f, err := os.OpenFile(tp.State, os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := f.WriteAt([]byte("X"), 100); err != nil {
				t.Fatal(err)
			}
		},
		"truncated":     func(t *testing.T, tp *Template) { must(t, os.Truncate(tp.State, 10)) },
		"state missing": func(t *testing.T, tp *Template) { must(t, os.Remove(tp.State)) },
		"manifest broken": func(t *testing.T, tp *Template) {
			must(t, os.WriteFile(filepath.Join(tp.Dir, manifestName), []byte("{"), 0o600))
		},
		"other version": func(t *testing.T, tp *Template) {
			b, _ := os.ReadFile(filepath.Join(tp.Dir, manifestName))
			b = bytes.Replace(b, []byte(fmt.Sprintf(`"version": %d`, FormatVersion)), []byte(`"version": 99`), 1)
			must(t, os.WriteFile(filepath.Join(tp.Dir, manifestName), b, 0o600))
		},
		"memory flipped byte": func(t *testing.T, tp *Template) {
			f, err := os.OpenFile(filepath.Join(tp.Dir, memoryName), os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := f.WriteAt([]byte("X"), 3*pageSize+100); err != nil {
				t.Fatal(err)
			}
		},
		"memory page written in a hole": func(t *testing.T, tp *Template) {
			f, err := os.OpenFile(filepath.Join(tp.Dir, memoryName), os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := f.WriteAt([]byte("X"), 100*pageSize); err != nil {
				t.Fatal(err)
			}
		},
		"memory truncated": func(t *testing.T, tp *Template) { must(t, os.Truncate(filepath.Join(tp.Dir, memoryName), 4*pageSize)) },
		"memory missing":   func(t *testing.T, tp *Template) { must(t, os.Remove(filepath.Join(tp.Dir, memoryName))) },
		"other key": func(t *testing.T, tp *Template) {
			b, _ := os.ReadFile(filepath.Join(tp.Dir, manifestName))
			b = bytes.Replace(b, []byte(`"kernel": "k1"`), []byte(`"kernel": "k9"`), 1)
			must(t, os.WriteFile(filepath.Join(tp.Dir, manifestName), b, 0o600))
		},
	} {
		t.Run(name, func(t *testing.T) {
			s := open(t)
			k := testKey()
			tp, err := s.Put(context.Background(), k, writer(bytes.Repeat([]byte{7}, 4096)), testMemory(t))
			if err != nil {
				t.Fatal(err)
			}
			damage(t, tp)
			_, err = s.Get(k)
			if !errors.Is(err, errdefs.ErrNotFound) || !strings.Contains(err.Error(), "unusable") {
				t.Fatalf("Get of a damaged template = %v, want unusable/not found", err)
			}
			if _, err := os.Stat(tp.Dir); !os.IsNotExist(err) {
				t.Errorf("damaged template still there: %v", err)
			}
			if _, err := s.Get(k); !errors.Is(err, errdefs.ErrNotFound) || strings.Contains(err.Error(), "unusable") {
				t.Errorf("second Get = %v, want plain not found", err)
			}
		})
	}
}

// A save that fails halfway (a full disk) leaves nothing: no template, no
// temporary directory, and an older template of the key is kept.
func TestFailedSaveLeavesNothing(t *testing.T) {
	s := open(t)
	k := testKey()
	if _, err := s.Put(context.Background(), k, writer([]byte("good old state")), nil); err != nil {
		t.Fatal(err)
	}
	_, err := s.Put(context.Background(), k, func(_ context.Context, f *os.File) error {
		if _, err := f.Write(bytes.Repeat([]byte{1}, 1<<20)); err != nil {
			return err
		}
		return &os.PathError{Op: "write", Path: f.Name(), Err: syscall.ENOSPC}
	}, nil)
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Put = %v, want ENOSPC", err)
	}
	assertNoTemps(t, s)
	got, err := s.Get(k)
	if err != nil || got.Size != int64(len("good old state")) {
		t.Errorf("old template after a failed rebuild: %+v, %v", got, err)
	}
	// An empty save is refused too.
	k2 := testKey()
	k2.VCPUs = 4
	if _, err := s.Put(context.Background(), k2, writer(nil), nil); err == nil {
		t.Error("an empty state was accepted")
	}
	assertNoTemps(t, s)
}

// What an interrupted write (a crash) left is removed by the next Open.
func TestOpenRemovesInterruptedWrites(t *testing.T) {
	dir := t.TempDir()
	half := filepath.Join(dir, tmpPrefix+"abc-123")
	must(t, os.MkdirAll(half, 0o700))
	must(t, os.WriteFile(filepath.Join(half, stateName), []byte("half"), 0o600))
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	assertNoTemps(t, s)
}

func assertNoTemps(t *testing.T, s *Store) {
	t.Helper()
	ents, _ := os.ReadDir(s.Dir())
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), tmpPrefix) {
			t.Errorf("left behind: %s", e.Name())
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// On a file system that really fills up, a save that runs out of space
// leaves neither a template nor its temporary directory, and the store
// works again once there is room.
func TestFullDisk(t *testing.T) {
	prereq.Root(t, "mounts a small tmpfs")
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=256k,mode=0700"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Unmount(dir, unix.MNT_DETACH) })
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Put(context.Background(), testKey(), writer(bytes.Repeat([]byte{1}, 1<<20)), nil)
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Put of 1 MiB into 256 KiB = %v, want ENOSPC", err)
	}
	assertNoTemps(t, s)
	// The state fits, the memory (1 MiB of pages) does not.
	mem, err := NewMemory("full", 4<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer mem.Close()
	if _, err := mem.WriteAt(bytes.Repeat([]byte{2}, 1<<20), 1<<20); err != nil {
		t.Fatal(err)
	}
	_, err = s.Put(context.Background(), testKey(), writer([]byte("small state")), mem)
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Put of 1 MiB of memory into 256 KiB = %v, want ENOSPC", err)
	}
	assertNoTemps(t, s)
	if _, err := s.Get(testKey()); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("Get after a full disk = %v, want not found", err)
	}
	if _, err := s.Put(context.Background(), testKey(), writer(bytes.Repeat([]byte{1}, 64<<10)), nil); err != nil {
		t.Fatalf("Put with room again: %v", err)
	}
	if _, err := s.Get(testKey()); err != nil {
		t.Error(err)
	}
}

// A template no Get asked for in Unused is removed when a store opens and
// after a Put; a Get keeps its template.
func TestUnusedTemplatesArePruned(t *testing.T) {
	s := open(t)
	stale, used, fresh := testKey(), testKey(), testKey()
	stale.Kernel, used.Kernel, fresh.Kernel = "old", "used", "fresh"
	for _, k := range []Key{stale, used} {
		if _, err := s.Put(context.Background(), k, writer([]byte("state "+k.Kernel)), nil); err != nil {
			t.Fatal(err)
		}
	}
	longAgo := time.Now().Add(-Unused - time.Hour)
	for _, k := range []Key{stale, used} {
		if err := os.Chtimes(filepath.Join(s.Dir(), k.ID()), longAgo, longAgo); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Get(used); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(context.Background(), fresh, writer([]byte("state fresh")), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(stale); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("unused template after a Put: %v, want removed", err)
	}
	for _, k := range []Key{used, fresh} {
		if _, err := s.Get(k); err != nil {
			t.Errorf("%s: %v", k.Kernel, err)
		}
	}
	// Opening a store prunes too.
	if err := os.Chtimes(filepath.Join(s.Dir(), fresh.ID()), longAgo, longAgo); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(s.Dir())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s2.Get(fresh); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("unused template after Open: %v, want removed", err)
	}
	if _, err := s2.Get(used); err != nil {
		t.Errorf("used: %v", err)
	}
	assertNoTemps(t, s2)
}
