package initd

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/ferryvm/ferry/internal/guest"
)

// step is one RUN being set up and torn down.
type step struct {
	st     *buildState
	s      *guest.BuildStep
	merged string
	mounts []string // mounted paths, in order (the overlay first)
	stubs  []string // mount points the step created, to remove after
	env    []string // extra variables (env secrets)
}

// runStep reads a guest.BuildStep from r, runs it on its overlay and
// returns the command's exit status; its output goes to stdout/stderr.
func (st *buildState) runStep(r io.Reader, stdout, stderr *os.File) (int, error) {
	raw, err := io.ReadAll(io.LimitReader(r, guest.MaxBuildStep+1))
	if err != nil {
		return 0, err
	}
	if len(raw) > guest.MaxBuildStep {
		return 0, fmt.Errorf("step description over %d bytes", guest.MaxBuildStep)
	}
	var s guest.BuildStep
	if err := json.Unmarshal(raw, &s); err != nil {
		return 0, fmt.Errorf("step description: %w", err)
	}
	if err := s.Validate(); err != nil {
		return 0, err
	}
	if !s.Network {
		// RUN --network=none: this goroutine stays on this thread, which
		// moves to an empty network namespace with lo up before anything
		// is mounted, so the step's sysfs shows that namespace and the
		// command (forked from this thread) runs in it.
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			return 0, fmt.Errorf("network namespace: %w", err)
		}
		if err := loopbackUp(); err != nil {
			return 0, fmt.Errorf("network namespace: lo: %w", err)
		}
	}
	p := &step{st: st, s: &s, merged: filepath.Join(st.run, "m", s.Upper)}
	defer p.teardown()
	if err := p.setup(); err != nil {
		return 0, err
	}
	return p.exec(stdout, stderr)
}

// overlayOptions are the overlayfs options of a step: lowers as paths
// relative to the build directory (the helper's working directory), so
// hundreds of layers fit in one page of options.
func overlayOptions(s *guest.BuildStep, base string) string {
	lowers := make([]string, 0, len(s.Lowers)+1)
	for _, l := range s.Lowers {
		lowers = append(lowers, "l/"+l)
	}
	lowers = append(lowers, base)
	return fmt.Sprintf("lowerdir=%s,upperdir=l/%s,workdir=w/%s", strings.Join(lowers, ":"), s.Upper, s.Upper)
}

func (p *step) setup() error {
	st, s := p.st, p.s
	for _, l := range s.Lowers {
		if _, err := os.Stat(st.layer(l)); err != nil {
			return fmt.Errorf("lower layer %s was not loaded", l)
		}
	}
	for _, d := range []string{st.layer(s.Upper), st.work(s.Upper), p.merged} {
		if err := os.RemoveAll(d); err != nil {
			return err
		}
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	if err := os.Chdir(st.build()); err != nil {
		return err
	}
	opts := overlayOptions(s, st.base)
	// Off: renamed directories are copied up whole and files keep full
	// copies, so the upper is a plain OCI diff.
	err := unix.Mount("overlay", p.merged, "overlay", 0, opts+",index=off,redirect_dir=off,metacopy=off")
	if errors.Is(err, unix.EINVAL) {
		err = unix.Mount("overlay", p.merged, "overlay", 0, opts)
	}
	if err != nil {
		return fmt.Errorf("mount the step's overlay (%d lowers): %w", len(s.Lowers)+1, err)
	}
	p.mounts = append(p.mounts, p.merged)

	const dir, file = false, true
	type m struct {
		src, target, fstype string
		flags               uintptr
		data                string
		isFile              bool
	}
	std := []m{
		{"proc", "/proc", "proc", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, "", dir},
		{"sysfs", "/sys", "sysfs", unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, "", dir},
		{"/dev", "/dev", "", unix.MS_BIND | unix.MS_REC, "", dir},
	}
	for _, f := range []string{"/etc/resolv.conf", "/etc/hosts", "/etc/hostname"} {
		if fi, err := os.Stat(f); err == nil && fi.Mode().IsRegular() {
			std = append(std, m{f, f, "", unix.MS_BIND | unix.MS_RDONLY, "", file})
		}
	}
	for _, x := range std {
		if err := p.mount(x.src, x.target, x.fstype, x.flags, x.data, x.isFile); err != nil {
			return err
		}
	}
	if len(s.Files) > 0 {
		if err := p.mount("tmpfs", "/dev/pipes", "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0755", dir); err != nil {
			return err
		}
		for _, f := range s.Files {
			hp := filepath.Join(p.merged, "dev", "pipes", f.Name)
			if err := os.WriteFile(hp, []byte(f.Data), 0o755); err != nil {
				return err
			}
		}
		if err := unix.Mount("", filepath.Join(p.merged, "dev", "pipes"), "", unix.MS_REMOUNT|unix.MS_RDONLY, "mode=0755"); err != nil {
			return err
		}
	}
	return p.userMounts()
}

// userMounts sets up the RUN --mount list.
func (p *step) userMounts() error {
	st, s := p.st, p.s
	var secrets string
	for i, m := range s.Mounts {
		switch m.Type {
		case "cache", "bind":
			src := st.dir(m.Source)
			if m.Type == "cache" {
				// The host keeps a cache's content, not its root's metadata:
				// set mode and owner every time (mode=, uid=, gid=).
				mode := os.FileMode(m.Mode)
				if mode == 0 {
					mode = 0o755
				}
				if err := os.MkdirAll(src, mode); err != nil {
					return err
				}
				_ = os.Chown(src, m.UID, m.GID)
				_ = os.Chmod(src, mode)
			}
			if m.SubPath != "" {
				src = filepath.Join(src, filepath.Clean("/"+m.SubPath))
			}
			fi, err := os.Stat(src)
			if err != nil {
				return fmt.Errorf("mount %s: source: %w", m.Target, err)
			}
			flags := uintptr(unix.MS_BIND | unix.MS_REC)
			if m.ReadOnly {
				flags |= unix.MS_RDONLY
			}
			if m.Type == "bind" && !m.ReadOnly && fi.IsDir() {
				// Writes to a read-write bind mount are thrown away: an
				// overlay with its upper on a tmpfs.
				scratch := filepath.Join(st.run, "b", fmt.Sprintf("%s-%d", s.Upper, i))
				if err := os.MkdirAll(scratch, 0o700); err != nil {
					return err
				}
				if err := unix.Mount("tmpfs", scratch, "tmpfs", 0, "mode=0700"); err != nil {
					return err
				}
				p.mounts = append(p.mounts, scratch)
				for _, d := range []string{"u", "w"} {
					_ = os.Mkdir(filepath.Join(scratch, d), 0o755)
				}
				opts := fmt.Sprintf("lowerdir=%s,upperdir=%s/u,workdir=%s/w", src, scratch, scratch)
				if err := p.mount("overlay", m.Target, "overlay", 0, opts, false); err != nil {
					return err
				}
				continue
			}
			if err := p.mount(src, m.Target, "", flags, "", !fi.IsDir()); err != nil {
				return err
			}
		case "tmpfs":
			data := "mode=1777"
			if m.Size > 0 {
				data += fmt.Sprintf(",size=%d", m.Size)
			}
			if err := p.mount("tmpfs", m.Target, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, data, false); err != nil {
				return err
			}
		case "secret":
			if m.Env != "" {
				p.env = append(p.env, m.Env+"="+string(m.Data))
			}
			if m.Target == "" {
				continue
			}
			if secrets == "" {
				secrets = filepath.Join(st.run, "s", s.Upper)
				if err := os.MkdirAll(secrets, 0o700); err != nil {
					return err
				}
				// A tmpfs: secrets never touch a disk, and go with the unmount.
				if err := unix.Mount("tmpfs", secrets, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "mode=0700"); err != nil {
					return err
				}
				p.mounts = append(p.mounts, secrets)
			}
			f := filepath.Join(secrets, fmt.Sprint(i))
			mode := os.FileMode(m.Mode)
			if mode == 0 {
				mode = 0o400
			}
			if err := os.WriteFile(f, m.Data, mode); err != nil {
				return err
			}
			_ = os.Chown(f, m.UID, m.GID)
			_ = os.Chmod(f, mode)
			if err := p.mount(f, m.Target, "", unix.MS_BIND|unix.MS_RDONLY, "", true); err != nil {
				return err
			}
		}
	}
	return nil
}

// mount mounts onto target inside the step's root, creating a stub (a
// directory, or an empty file for a file) that teardown removes again
// when the target is missing, so mount points never reach the layer.
func (p *step) mount(src, target, fstype string, flags uintptr, data string, isFile bool) error {
	hp, err := inRoot(p.merged, target, true)
	if err != nil {
		return err
	}
	if _, err := os.Lstat(hp); errors.Is(err, os.ErrNotExist) {
		parent, made, err := mkdirInRoot(p.merged, path.Dir(target), 0o755, 0, 0)
		p.stubs = append(p.stubs, made...)
		if err != nil {
			return fmt.Errorf("mount point %s: %w", target, err)
		}
		hp = filepath.Join(parent, path.Base(target))
		if isFile {
			f, err := os.OpenFile(hp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
			if err != nil {
				return fmt.Errorf("mount point %s: %w", target, err)
			}
			f.Close()
		} else if err := os.Mkdir(hp, 0o755); err != nil {
			return fmt.Errorf("mount point %s: %w", target, err)
		}
		p.stubs = append(p.stubs, hp)
	}
	bind := flags&unix.MS_BIND != 0
	mflags := flags
	if bind {
		mflags &^= unix.MS_RDONLY // a bind mount takes read-only only on a remount
	}
	if err := unix.Mount(src, hp, fstype, mflags, data); err != nil {
		return fmt.Errorf("mount %s on %s: %w", src, target, err)
	}
	p.mounts = append(p.mounts, hp)
	if bind && flags&unix.MS_RDONLY != 0 {
		if err := unix.Mount("", hp, "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY, ""); err != nil {
			return fmt.Errorf("remount %s read-only: %w", target, err)
		}
	}
	return nil
}

// teardown unmounts what the step mounted and removes its stubs, leaving
// only the command's own changes in the upper.
func (p *step) teardown() {
	for i := len(p.mounts) - 1; i >= 1; i-- {
		_ = unix.Unmount(p.mounts[i], unix.MNT_DETACH)
	}
	for i := len(p.stubs) - 1; i >= 0; i-- {
		_ = os.Remove(p.stubs[i]) // only an empty stub goes: what the command wrote stays
	}
	if len(p.mounts) > 0 {
		_ = unix.Unmount(p.mounts[0], unix.MNT_DETACH)
	}
	_ = os.Remove(p.merged)
	p.dropCopiedUp()
}

// dropCopiedUp removes from the upper the directories overlayfs copied up
// only because a stub was made in them: once the stub is gone they are
// empty, and equal to the lower they shadow, so the layer does not need
// them. (Unmounted, the upper is a plain directory.)
func (p *step) dropCopiedUp() {
	upper := p.st.layer(p.s.Upper)
	seen := map[string]bool{}
	var cands []string
	for _, stub := range p.stubs {
		rel, err := filepath.Rel(p.merged, stub)
		if err != nil || strings.HasPrefix(rel, "..") {
			continue
		}
		for d := filepath.Dir(rel); d != "." && d != "/" && !seen[d]; d = filepath.Dir(d) {
			seen[d] = true
			cands = append(cands, d)
		}
	}
	sort.Slice(cands, func(i, j int) bool { return len(cands[i]) > len(cands[j]) })
	for _, rel := range cands {
		up := filepath.Join(upper, rel)
		ents, err := os.ReadDir(up)
		if err != nil || len(ents) > 0 || xattrs(up)[overlayOpaque] == "y" {
			continue
		}
		if p.lowerMatches(rel, up) {
			_ = os.Remove(up)
		}
	}
}

// lowerMatches reports whether the topmost lower holding rel has a
// directory there with the same mode and owner as up.
func (p *step) lowerMatches(rel, up string) bool {
	var u, l unix.Stat_t
	if unix.Lstat(up, &u) != nil {
		return false
	}
	dirs := make([]string, 0, len(p.s.Lowers)+1)
	for _, id := range p.s.Lowers {
		dirs = append(dirs, p.st.layer(id))
	}
	dirs = append(dirs, p.st.base)
	for _, d := range dirs {
		if unix.Lstat(filepath.Join(d, rel), &l) == nil {
			return l.Mode == u.Mode && l.Uid == u.Uid && l.Gid == u.Gid
		}
	}
	return false
}

// exec resolves the user, environment, working directory and command in
// the step's root, runs it and returns its status.
func (p *step) exec(stdout, stderr *os.File) (int, error) {
	s := p.s
	read := func(f string) []byte {
		hp, err := inRoot(p.merged, f, true)
		if err != nil {
			return nil
		}
		b, _ := os.ReadFile(hp)
		return b
	}
	cred, err := ResolveUser(s.User, read("/etc/passwd"), read("/etc/group"))
	if err != nil {
		fmt.Fprintf(stderr, "%v\n", err)
		return 125, nil
	}
	env := BuildEnv(nil, append(append([]string(nil), s.Env...), p.env...), cred.Home, s.Hostname, false)
	wd := s.Workdir
	if wd == "" {
		wd = "/"
	}
	if _, _, err := mkdirInRoot(p.merged, wd, 0o755, int(cred.UID), int(cred.GID)); err != nil {
		fmt.Fprintf(stderr, "working directory %s: %v\n", wd, err)
		return 125, nil
	}
	argv0, err := lookPathInRoot(p.merged, s.Argv[0], lookupEnv(env, "PATH"), wd)
	if err != nil {
		fmt.Fprintf(stderr, "%v\n", err)
		var f *guest.Failure
		if errors.As(err, &f) {
			return failureCode(f), nil
		}
		return 127, nil
	}
	null, err := os.Open("/dev/null")
	if err != nil {
		return 0, err
	}
	defer null.Close()
	attr := &syscall.ProcAttr{
		Dir: wd, Env: env, Files: []uintptr{null.Fd(), stdout.Fd(), stderr.Fd()},
		Sys: &syscall.SysProcAttr{
			Chroot: p.merged, Setsid: true, Pdeathsig: syscall.SIGKILL,
			// A new PID namespace: whatever the command leaves running
			// dies with it.
			Cloneflags: syscall.CLONE_NEWPID,
		},
	}
	if cred.UID != 0 || cred.GID != 0 || len(cred.Groups) > 0 {
		attr.Sys.Credential = &syscall.Credential{Uid: cred.UID, Gid: cred.GID, Groups: cred.Groups}
	}
	pid, err := syscall.ForkExec(argv0, s.Argv, attr)
	if err != nil {
		fmt.Fprintf(stderr, "%v\n", execFailure(s.Argv[0], err))
		return 126, nil
	}
	var ws syscall.WaitStatus
	for {
		_, err := syscall.Wait4(pid, &ws, 0, nil)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil {
			return 0, err
		}
		break
	}
	if ws.Signaled() {
		return 128 + int(ws.Signal()), nil
	}
	return ws.ExitStatus(), nil
}

// lookPathInRoot finds argv0 like execvp would inside root and returns
// the path as the chrooted command sees it.
func lookPathInRoot(root, argv0, pathEnv, dir string) (string, error) {
	check := func(p string) error {
		hp, err := inRoot(root, p, true)
		if err != nil {
			return err
		}
		fi, err := os.Stat(hp)
		if err != nil {
			return err
		}
		if fi.IsDir() || fi.Mode()&0o111 == 0 {
			return unix.EACCES
		}
		return nil
	}
	if strings.Contains(argv0, "/") {
		p := argv0
		if !path.IsAbs(p) {
			p = path.Join(dir, p)
		}
		if err := check(p); err != nil {
			return "", execFailure(argv0, err)
		}
		return p, nil
	}
	var first error
	for _, d := range filepath.SplitList(pathEnv) {
		if !path.IsAbs(d) {
			d = path.Join(dir, d)
		}
		p := path.Join(d, argv0)
		err := check(p)
		if err == nil {
			return p, nil
		}
		if first == nil && errors.Is(err, unix.EACCES) {
			first = err
		}
	}
	if first == nil {
		first = unix.ENOENT
	}
	return "", execFailure(argv0, first)
}
