package initd

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/ferryvm/ferry/internal/guest"
)

// The build helper (guest.BuildHelperArg) keeps its state on the builder
// VM's scratch disk, mounted a second time (the same file system init
// mounted for the root overlay's upper) under buildRunDir on /run's tmpfs:
//
//	/run/ferry-build/base           the base disk, read-only: the bottom of every step
//	/run/ferry-build/scratch/build/
//	  l/<id>                        layers: step uppers and loaded lowers (overlayfs format)
//	  w/<id>                        overlayfs work directories
//	  d/<id>                        plain trees: bind and cache mount sources
//	/run/ferry-build/m/<id>         a running step's merged root
//	/run/ferry-build/s/<id>         a running step's secrets (tmpfs, never on disk)
const buildRunDir = "/run/ferry-build"

// BuildMain runs ferry-init as the build helper with the arguments after
// guest.BuildHelperArg and returns the exit status: a RUN's own status,
// or 125 with one line on stderr when the helper itself fails.
func BuildMain(args []string) int {
	op, err := guest.ParseBuildOp(args)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 125
	}
	if op.Op == guest.BuildReady {
		return 0
	}
	if op.Op == guest.BuildIdle {
		sigs := make(chan os.Signal, 1)
		signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
		<-sigs
		return 0
	}
	st, err := openBuildState(op.Base, op.Scratch)
	if err != nil {
		fmt.Fprintf(os.Stderr, "ferry-build: %v\n", err)
		return 125
	}
	switch op.Op {
	case guest.BuildLoad:
		err = st.load(op.Kind, op.ID, os.Stdin)
	case guest.BuildDiff:
		err = WriteTree(st.layer(op.ID), os.Stdout, true)
	case guest.BuildSave:
		err = WriteTree(st.dir(op.ID), os.Stdout, false)
	case guest.BuildRun:
		var code int
		code, err = st.runStep(os.Stdin, os.Stdout, os.Stderr)
		if err == nil {
			return code
		}
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "ferry-build %s: %v\n", op.Op, err)
		return 125
	}
	return 0
}

// buildState is the helper's view of the scratch disk.
type buildState struct {
	run     string // buildRunDir
	base    string
	scratch string
}

func (st *buildState) build() string          { return filepath.Join(st.scratch, "build") }
func (st *buildState) layer(id string) string { return filepath.Join(st.build(), "l", id) }
func (st *buildState) work(id string) string  { return filepath.Join(st.build(), "w", id) }
func (st *buildState) dir(id string) string   { return filepath.Join(st.build(), "d", id) }

// openBuildState mounts the base and scratch disks under buildRunDir the
// first time a helper runs in this VM.
func openBuildState(baseDev, scratchDev string) (*buildState, error) {
	st := &buildState{run: buildRunDir, base: filepath.Join(buildRunDir, "base"), scratch: filepath.Join(buildRunDir, "scratch")}
	lock, err := lockFile(filepath.Join(buildRunDir, "lock"))
	if err != nil {
		return nil, err
	}
	defer lock.Close()
	for _, m := range []struct {
		dev, dir string
		flags    uintptr
	}{{baseDev, st.base, unix.MS_RDONLY}, {scratchDev, st.scratch, 0}} {
		if err := os.MkdirAll(m.dir, 0o700); err != nil {
			return nil, err
		}
		if mounted(m.dir) {
			continue
		}
		// The disk is already mounted by init: this mount shares its super block.
		if err := unix.Mount(m.dev, m.dir, "ext4", m.flags, ""); err != nil {
			return nil, fmt.Errorf("mount %s on %s: %w", m.dev, m.dir, err)
		}
	}
	for _, d := range []string{"l", "w", "d"} {
		if err := os.MkdirAll(filepath.Join(st.build(), d), 0o700); err != nil {
			return nil, err
		}
	}
	return st, nil
}

func lockFile(p string) (*os.File, error) {
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// mounted reports whether dir is a mount point (its device differs from
// its parent's).
func mounted(dir string) bool {
	var a, b unix.Stat_t
	if unix.Stat(dir, &a) != nil || unix.Stat(filepath.Dir(dir), &b) != nil {
		return false
	}
	return a.Dev != b.Dev
}

// load extracts a tar from r as layer or directory id, replacing any
// earlier one.
func (st *buildState) load(kind, id string, r io.Reader) error {
	dst := st.dir(id)
	if kind == guest.LoadLayer {
		dst = st.layer(id)
	}
	if err := os.RemoveAll(dst); err != nil {
		return err
	}
	err := ReadTree(r, dst, kind == guest.LoadLayer)
	if err != nil {
		_ = os.RemoveAll(dst)
		return err
	}
	if _, err := io.Copy(io.Discard, r); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}
