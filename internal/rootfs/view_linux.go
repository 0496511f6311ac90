package rootfs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"golang.org/x/sys/unix"

	"github.com/ferryvm/ferry/internal/errdefs"
	"github.com/ferryvm/ferry/internal/guest"
	"github.com/ferryvm/ferry/internal/rootfs/loop"
)

// View runs fn with machine id's root filesystem as the root directory of
// fn's goroutine, assembled on the host as ferry-init assembles it at boot:
// the scratch's overlay upper over the base (ModeOverlay) or the machine's
// own disk (ModePersistent). It is how a stopped machine's files are read
// and written (docker cp); the caller keeps the machine from starting
// while View runs, and the disks stay busy for Prepare and Release.
//
// The view lives in a mount namespace of its own, on one OS thread that
// ends with it: nothing else on the host sees its mounts, a path in it
// resolves inside it (an absolute symlink or ".." stays in the machine's
// root: the thread's root is the view), and a killed daemon leaves
// nothing mounted or attached (loop devices clear themselves). The
// machine's disks are mounted nosuid, nodev and noexec; read-only unless
// writable. fn must do its file work on its own goroutine (another one
// sees the host's files) and must not keep files open past its return.
func (m *Manager) View(ctx context.Context, id string, writable bool, fn func() error) error {
	d, err := m.Disks(ctx, id)
	if err != nil {
		return err
	}
	if !m.lockMachine(id) {
		return fmt.Errorf("machine %s: rootfs busy: %w", id, errdefs.ErrConflict)
	}
	defer m.unlockMachine(id)
	return onOwnThread(func() error { return inView(d, writable, fn) })
}

// onOwnThread runs f on a goroutine locked to an OS thread that ends with
// it (never unlocked: the thread, with the namespace and root f gave it,
// exits instead of going back to the scheduler). The process's main thread
// cannot exit (the runtime parks it for good, and /proc/self would show
// its namespace), so a goroutine that lands there holds it while another,
// which cannot land there then, does the work.
func onOwnThread(f func() error) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if unix.Gettid() != unix.Getpid() {
			done <- f()
			return
		}
		defer runtime.UnlockOSThread()
		done <- onOwnThread(f)
	}()
	return <-done
}

// viewDir is where a view's mounts are made, in its own namespace (on a
// tmpfs mounted over it there, so the host's directory is untouched).
var viewDir = os.TempDir()

func inView(d Disks, writable bool, fn func() error) (err error) {
	// The disks are attached first: the tmpfs below may hide their files.
	// The base is read-only; the scratch is attached read-write even for a
	// read-only view, so that a journal left to replay is replayed, as the
	// next boot would.
	type disk struct {
		name     string
		dev      *loop.Device
		readOnly bool
	}
	var disks []disk
	defer func() {
		for _, dk := range disks {
			dk.dev.Close() // the mounts hold the devices from here
		}
	}()
	attach := func(file, name string, readOnly bool) error {
		dev, err := loop.Attach(file, readOnly)
		if err == nil {
			disks = append(disks, disk{name, dev, readOnly})
		}
		return err
	}
	if d.Mode == ModePersistent {
		err = attach(d.Writable, "root", false)
	} else if err = attach(d.Base, "base", true); err == nil {
		err = attach(d.Writable, "scratch", false)
	}
	if err != nil {
		return fmt.Errorf("view: %w", err)
	}
	// CLONE_FS: the thread's root and working directory become its own.
	if err := unix.Unshare(unix.CLONE_NEWNS | unix.CLONE_FS); err != nil {
		return fmt.Errorf("view: unshare: %w", err)
	}
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("view: make mounts private: %w", err)
	}
	if err := unix.Mount("tmpfs", viewDir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "mode=0700,size=64k"); err != nil {
		return fmt.Errorf("view: %w", err)
	}
	var mounted []string // innermost last
	defer func() {
		for i := len(mounted) - 1; i >= 0; i-- {
			// Synchronous unmounts: a writable disk is flushed before the
			// machine may start on it.
			if uerr := unix.Unmount(mounted[i], 0); uerr != nil && err == nil {
				err = fmt.Errorf("view: unmount %s: %w", mounted[i], uerr)
			}
		}
	}()
	flags := uintptr(unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC)
	at := map[string]string{}
	for _, dk := range disks {
		p := filepath.Join(viewDir, dk.name)
		if err := os.Mkdir(p, 0o700); err != nil {
			return fmt.Errorf("view: %w", err)
		}
		mf := flags
		if dk.readOnly || !writable {
			mf |= unix.MS_RDONLY
		}
		// errors=remount-ro overrides what the disk's superblock asks for:
		// a guest could have set errors=panic, for the host's kernel.
		if err := unix.Mount(dk.dev.Path, p, "ext4", mf, "errors=remount-ro"); err != nil {
			return fmt.Errorf("view: mount %s: %w", dk.name, err)
		}
		mounted = append(mounted, p)
		at[dk.name] = p
	}
	root := at["root"]
	if d.Mode != ModePersistent {
		if root, err = overlay(at["base"], at["scratch"], writable, flags); err != nil {
			return err
		}
		if root != at["base"] {
			mounted = append(mounted, root)
		}
	}
	host, err := os.Open("/")
	if err != nil {
		return fmt.Errorf("view: %w", err)
	}
	defer host.Close()
	if err := unix.Chdir(root); err != nil {
		return fmt.Errorf("view: %w", err)
	}
	if err := unix.Chroot("."); err != nil {
		return fmt.Errorf("view: chroot: %w", err)
	}
	ferr := fn()
	// Back out of the view so that its mounts can go.
	if err := unix.Fchdir(int(host.Fd())); err != nil {
		return errors.Join(ferr, fmt.Errorf("view: leave: %w", err))
	}
	if err := unix.Chroot("."); err != nil {
		return errors.Join(ferr, fmt.Errorf("view: leave: %w", err))
	}
	return ferr
}

// overlay mounts the machine's merged root from its mounted base and
// scratch, with overlayfs features off as ferry-init leaves them (its
// kernel: no redirect_dir, index or metacopy). Read-only, the upper is the
// top lower layer. A scratch without an upper (never booted) adds nothing:
// the root is the base, unless writable, when the upper is made as init
// would make it.
func overlay(base, scratch string, writable bool, flags uintptr) (string, error) {
	upper := filepath.Join(scratch, guest.ScratchUpper)
	work := filepath.Join(scratch, guest.ScratchWork)
	if _, err := os.Lstat(upper); errors.Is(err, os.ErrNotExist) {
		if !writable {
			return base, nil
		}
		for _, p := range []string{upper, work} {
			if err := os.MkdirAll(p, 0o755); err != nil {
				return "", fmt.Errorf("view: %w", err)
			}
		}
	}
	root := filepath.Join(viewDir, "root")
	if err := os.Mkdir(root, 0o700); err != nil {
		return "", fmt.Errorf("view: %w", err)
	}
	opts := "lowerdir=" + upper + ":" + base
	if writable {
		opts = "lowerdir=" + base + ",upperdir=" + upper + ",workdir=" + work
	} else {
		flags |= unix.MS_RDONLY
	}
	err := unix.Mount("overlay", root, "overlay", flags, opts+",redirect_dir=off,index=off,metacopy=off")
	if errors.Is(err, unix.EINVAL) { // a kernel without those options
		err = unix.Mount("overlay", root, "overlay", flags, opts)
	}
	if err != nil {
		return "", fmt.Errorf("view: mount the overlay: %w", err)
	}
	return root, nil
}
