package mkext4

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ferryvm/ferry/internal/testutil/prereq"
)

// TestDebugfsWrites has e2fsprogs' own library allocate in the new
// filesystem: a directory and a file, which e2fsck must still find clean.
func TestDebugfsWrites(t *testing.T) {
	prereq.Tools(t, "e2fsck", "debugfs")
	const size = 64 << 20
	prereq.File(t, "/etc/os-release", "run on a host with /etc/os-release (package base-files)")
	src, err := os.ReadFile("/etc/os-release")
	if err != nil {
		t.Fatal(err)
	}
	path := sparseFile(t, size)
	formatFile(t, path, size, Options{})
	script := filepath.Join(t.TempDir(), "cmds")
	if err := os.WriteFile(script, []byte("mkdir d\nwrite /etc/os-release d/f\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out := runCmd(t, "debugfs", "-w", "-f", script, path); strings.Contains(out, "rror") {
		t.Fatalf("debugfs:\n%s", out)
	}
	inodes, _ := fsck(t, path)
	if inodes != firstIno+2 {
		t.Errorf("e2fsck counts %d inodes in use, want %d", inodes, firstIno+2)
	}
	got, err := exec.Command("debugfs", "-R", "cat d/f", path).Output()
	if err != nil {
		t.Fatalf("debugfs cat d/f: %v", err)
	}
	if !bytes.Equal(got, src) {
		t.Errorf("d/f reads back %d bytes, want the %d of /etc/os-release", len(got), len(src))
	}
}

// TestKernelWrites mounts the new filesystem with the kernel's ext4 on a
// loop device, with inode-table zeroing off (noinit_itable) and the device
// full of garbage past its first block, fills it with a few thousand
// small files and a 50 MiB one, and has e2fsck check the result.
func TestKernelWrites(t *testing.T) {
	prereq.Root(t, "to attach loop devices and mount")
	prereq.Tools(t, "e2fsck", "dumpe2fs", "losetup", "mount", "umount")
	prereq.Loop(t)
	privateMounts(t)
	const size = 256 << 20
	path := sparseFile(t, size)
	fillRandom(t, path, size, 3)
	formatFile(t, path, size, Options{Label: "ferry-scratch"})

	loop := strings.TrimSpace(runCmd(t, "losetup", "--find", "--show", path))
	t.Cleanup(func() {
		if out, err := exec.Command("losetup", "-d", loop).CombinedOutput(); err != nil {
			t.Errorf("losetup -d %s: %v\n%s", loop, err, out)
		}
	})
	dir := t.TempDir()
	mount := func(opts string) (unmount func()) {
		runCmd(t, "mount", "-t", "ext4", "-o", opts, loop, dir)
		mounted := true
		unmount = func() {
			if mounted {
				mounted = false
				runCmd(t, "umount", dir)
				waitReleased(t, loop)
			}
		}
		t.Cleanup(unmount)
		return unmount
	}

	unmount := mount("noinit_itable")
	files := writeTree(t, dir)
	big := make([]byte, 50<<20)
	_, _ = rand.NewChaCha8([32]byte{4}).Read(big)
	if err := os.WriteFile(filepath.Join(dir, "big"), big, 0o644); err != nil {
		t.Fatal(err)
	}
	unmount()

	if h := dumpe2fs(t, path); h["FS Error count"] != "" {
		t.Errorf("the kernel recorded %s errors, the first: %s", h["FS Error count"], h["First error function"])
	}
	inodes, _ := fsck(t, path)
	if want := uint64(firstIno + len(files) + 1); inodes != want {
		t.Errorf("e2fsck counts %d inodes in use, want %d", inodes, want)
	}

	unmount = mount("ro")
	defer unmount()
	got, err := os.ReadFile(filepath.Join(dir, "big"))
	if err != nil {
		t.Fatal(err)
	}
	if sha256.Sum256(got) != sha256.Sum256(big) {
		t.Error("big reads back different from what was written")
	}
	for name, want := range files {
		if want == nil {
			continue // a directory
		}
		if got, err := os.ReadFile(filepath.Join(dir, name)); err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s reads back %d bytes (err %v), want %d", name, len(got), err, len(want))
		}
	}
}

// privateMounts moves the test's goroutine, for good, onto a thread with
// a private mount namespace of its own. A mount made in the host's
// namespace is copied into every mount namespace created while it exists
// (an `ip netns exec` of a test running beside this one, say), and the
// copy keeps the filesystem alive after umount: its journal is then not
// yet checkpointed when e2fsck reads the image. The thread is never
// unlocked, so it exits with the test instead of running other code in
// the wrong namespace; t.Cleanup runs on the same goroutine.
func privateMounts(t *testing.T) {
	runtime.LockOSThread()
	if err := syscall.Unshare(syscall.CLONE_NEWNS); err != nil {
		t.Fatalf("unshare the mount namespace: %v", err)
	}
	if err := syscall.Mount("", "/", "", syscall.MS_REC|syscall.MS_PRIVATE, ""); err != nil {
		t.Fatalf("make / private in the test's mount namespace: %v", err)
	}
}

// waitReleased waits until the filesystem unmounted from dev is gone
// from the kernel: a mounted block device cannot be opened O_EXCL.
func waitReleased(t *testing.T, dev string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		f, err := os.OpenFile(dev, os.O_RDONLY|syscall.O_EXCL, 0)
		if err == nil {
			f.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s is still held 30 s after umount (%v): another mount namespace keeps the filesystem mounted", dev, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// writeTree writes 40 directories of 80 small files under dir and returns
// them by name (a directory maps to nil).
func writeTree(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	rng := rand.New(rand.NewPCG(5, 6))
	files := map[string][]byte{}
	for d := range 40 {
		dn := fmt.Sprintf("d%02d", d)
		if err := os.Mkdir(filepath.Join(dir, dn), 0o755); err != nil {
			t.Fatal(err)
		}
		files[dn] = nil
		for f := range 80 {
			name := filepath.Join(dn, fmt.Sprintf("f%03d", f))
			data := make([]byte, rng.IntN(10000))
			for i := range data {
				data[i] = byte(rng.Uint32())
			}
			if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
				t.Fatal(err)
			}
			files[name] = data
		}
	}
	return files
}
