package apply

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ferryvm/ferry/internal/rootfs/sparse"
)

// dirfs applies layers to a host directory. Every operation starts from
// the root's fd: parents are opened with openat2(RESOLVE_IN_ROOT |
// RESOLVE_NO_MAGICLINKS), or, when a missing parent must be created, by
// an fd-by-fd walk with the same in-root semantics; the final component
// is always handled with *at calls that do not follow it.
type dirfs struct {
	root     int
	maxDepth int
	log      *slog.Logger
	dirTimes []dirTime
	cleared  map[fileID]struct{} // directories an opaque marker cleared in this layer
}

type fileID struct{ dev, ino uint64 }

type dirTime struct {
	p            []string
	mtime, atime time.Time
}

const resolveInRoot = unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS

func newDirfs(dir string, maxDepth int, log *slog.Logger) (*dirfs, error) {
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", dir, err)
	}
	return &dirfs{root: fd, maxDepth: maxDepth, log: log, cleared: map[fileID]struct{}{}}, nil
}

func (d *dirfs) close() error { return unix.Close(d.root) }

// openDir returns an O_PATH fd of directory p resolved in-root, and
// where it resolved to. Without create a missing directory returns -1
// and no error. A path without symlinks is opened by the kernel in one
// openat2 call; one with symlinks (or missing parents to create) is
// walked component by component, with the same rules and limits as
// memfs's walk, so both outputs agree on every verdict.
func (d *dirfs) openDir(p []string, create bool) (int, where, error) {
	if len(p) == 0 {
		fd, err := unix.FcntlInt(uintptr(d.root), unix.F_DUPFD_CLOEXEC, 0)
		return fd, where{}, err
	}
	how := &unix.OpenHow{Flags: unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC, Resolve: resolveInRoot | unix.RESOLVE_NO_SYMLINKS}
	var err error
	for range 8 {
		var fd int
		fd, err = unix.Openat2(d.root, strings.Join(p, "/"), how)
		if err == nil {
			var at where
			for _, c := range p {
				at = at.child(c)
			}
			return fd, at, nil
		}
		if !errors.Is(err, unix.EAGAIN) && !errors.Is(err, unix.EINTR) {
			break
		}
	}
	switch {
	case errors.Is(err, unix.ELOOP): // a symlink on the way
		return d.walk(p, create)
	case errors.Is(err, unix.ENOENT), errors.Is(err, unix.ENOTDIR):
		if !create {
			return -1, where{}, nil
		}
		return d.walk(p, true)
	}
	return -1, where{}, fmt.Errorf("open %s: %w", joinPath(p), err)
}

// walk resolves p one component at a time from the root, following
// symlinks in-root (absolute targets restart at the root, ".." never goes
// above it) and, with create, making missing directories.
func (d *dirfs) walk(p []string, create bool) (int, where, error) {
	root, _, err := d.openDir(nil, false)
	if err != nil {
		return -1, where{}, err
	}
	stack := []int{root}
	ats := []where{{}}
	closeAll := func() {
		for _, fd := range stack {
			_ = unix.Close(fd)
		}
	}
	fail := func(err error) (int, where, error) {
		closeAll()
		return -1, where{}, err
	}
	rest := append([]string(nil), p...)
	follows, steps := 0, 0
	for len(rest) > 0 {
		c := rest[0]
		rest = rest[1:]
		if steps++; steps > maxWalkSteps {
			return fail(errWalk)
		}
		switch c {
		case "", ".":
			continue
		case "..":
			if len(stack) > 1 {
				_ = unix.Close(stack[len(stack)-1])
				stack, ats = stack[:len(stack)-1], ats[:len(ats)-1]
			}
			continue
		}
		cur := stack[len(stack)-1]
		var st unix.Stat_t
		err := unix.Fstatat(cur, c, &st, unix.AT_SYMLINK_NOFOLLOW)
		if errors.Is(err, unix.ENOENT) {
			if !create {
				return fail(nil)
			}
			if err := ats[len(ats)-1].child(c).check(d.maxDepth); err != nil {
				return fail(err)
			}
			if err := unix.Mkdirat(cur, c, 0o755); err != nil && !errors.Is(err, unix.EEXIST) {
				return fail(fmt.Errorf("mkdir %s: %w", c, err))
			}
			if err := unix.Fchmodat(cur, c, 0o755, unix.AT_SYMLINK_NOFOLLOW); err != nil {
				return fail(fmt.Errorf("chmod %s: %w", c, err))
			}
			err = unix.Fstatat(cur, c, &st, unix.AT_SYMLINK_NOFOLLOW)
			d.created(&st)
		}
		if err != nil {
			return fail(fmt.Errorf("stat %s: %w", c, err))
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFDIR:
			fd, err := unix.Openat(cur, c, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			if err != nil {
				return fail(fmt.Errorf("open %s: %w", c, err))
			}
			stack, ats = append(stack, fd), append(ats, ats[len(ats)-1].child(c))
		case unix.S_IFLNK:
			follows++
			if follows > maxSymlinkFollows {
				return fail(errLoop)
			}
			target, err := readlinkat(cur, c)
			if err != nil {
				return fail(err)
			}
			if strings.HasPrefix(target, "/") {
				for _, fd := range stack[1:] {
					_ = unix.Close(fd)
				}
				stack, ats = stack[:1], ats[:1]
			}
			rest = append(strings.Split(target, "/"), rest...)
		default:
			if !create {
				return fail(nil)
			}
			return fail(errNotDir)
		}
	}
	top := stack[len(stack)-1]
	for _, fd := range stack[:len(stack)-1] {
		_ = unix.Close(fd)
	}
	return top, ats[len(ats)-1], nil
}

// created forgets that an earlier directory with the inode of a new one
// was cleared (inode numbers are reused).
func (d *dirfs) created(st *unix.Stat_t) {
	if len(d.cleared) > 0 {
		delete(d.cleared, fileID{st.Dev, st.Ino})
	}
}

func readlinkat(dirfd int, name string) (string, error) {
	buf := make([]byte, maxLinkTarget+1)
	n, err := unix.Readlinkat(dirfd, name, buf)
	if err != nil {
		return "", fmt.Errorf("readlink %s: %w", name, err)
	}
	return string(buf[:n]), nil
}

// parentOf opens p's parent directory and returns it with p's last name.
func (d *dirfs) parentOf(p []string, create bool) (int, string, error) {
	fd, _, err := d.openDir(p[:len(p)-1], create)
	return fd, p[len(p)-1], err
}

// newChild opens p's parent (creating missing directories) and checks
// the resolved path of p against the limits.
func (d *dirfs) newChild(p []string) (int, string, error) {
	fd, at, err := d.openDir(p[:len(p)-1], true)
	if err != nil {
		return -1, "", err
	}
	name := p[len(p)-1]
	if err := at.child(name).check(d.maxDepth); err != nil {
		_ = unix.Close(fd)
		return -1, "", err
	}
	return fd, name, nil
}

// removeAt removes name in dirfd, recursively for directories, never
// following symlinks.
func removeAt(dirfd int, name string) error {
	err := unix.Unlinkat(dirfd, name, 0)
	if err == nil || errors.Is(err, unix.ENOENT) {
		return nil
	}
	if !errors.Is(err, unix.EISDIR) && !errors.Is(err, unix.EPERM) {
		return fmt.Errorf("remove %s: %w", name, err)
	}
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("remove %s: %w", name, err)
	}
	names, err := readNames(fd)
	if err == nil {
		for _, n := range names {
			if err = removeAt(fd, n); err != nil {
				break
			}
		}
	}
	_ = unix.Close(fd)
	if err != nil {
		return err
	}
	if err := unix.Unlinkat(dirfd, name, unix.AT_REMOVEDIR); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("remove %s: %w", name, err)
	}
	return nil
}

// readNames lists a directory opened O_RDONLY (the fd stays open).
func readNames(fd int) ([]string, error) {
	dup, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(dup), "dir")
	defer f.Close()
	return f.Readdirnames(-1)
}

func (d *dirfs) removeAll(p []string) error {
	if len(p) == 0 {
		return invalid("whiteout of the root")
	}
	pfd, name, err := d.parentOf(p, false)
	if err != nil || pfd < 0 {
		return err
	}
	defer func() { _ = unix.Close(pfd) }()
	return removeAt(pfd, name)
}

func (d *dirfs) clearDir(p []string, keep *kept) error {
	dfd, _, err := d.openDir(p, false)
	if err != nil || dfd < 0 {
		return err
	}
	fd, err := unix.Openat(dfd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	_ = unix.Close(dfd)
	if err != nil {
		return fmt.Errorf("open %s: %w", joinPath(p), err)
	}
	defer func() { _ = unix.Close(fd) }()
	return d.clearAt(fd, keep)
}

func (d *dirfs) clearAt(fd int, keep *kept) error {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fmt.Errorf("stat: %w", err)
	}
	id := fileID{st.Dev, st.Ino}
	if _, ok := d.cleared[id]; ok {
		return nil
	}
	d.cleared[id] = struct{}{}
	names, err := readNames(fd)
	if err != nil {
		return err
	}
	for _, n := range names {
		k := keep.child(n)
		if k == nil {
			if err := removeAt(fd, n); err != nil {
				return err
			}
			continue
		}
		sub, err := unix.Openat(fd, n, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			continue // kept non-directory
		}
		err = d.clearAt(sub, k)
		_ = unix.Close(sub)
		if err != nil {
			return err
		}
	}
	return nil
}

func (d *dirfs) mkdir(p []string, m meta) error {
	var fd int
	var err error
	if len(p) == 0 {
		fd, err = unix.Openat(d.root, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	} else {
		var pfd int
		var name string
		pfd, name, err = d.newChild(p)
		if err != nil {
			return err
		}
		defer func() { _ = unix.Close(pfd) }()
		var st unix.Stat_t
		serr := unix.Fstatat(pfd, name, &st, unix.AT_SYMLINK_NOFOLLOW)
		if serr == nil && st.Mode&unix.S_IFMT != unix.S_IFDIR {
			if err := removeAt(pfd, name); err != nil {
				return err
			}
			serr = unix.ENOENT
		}
		if serr != nil {
			if err := unix.Mkdirat(pfd, name, 0o700); err != nil {
				return fmt.Errorf("mkdir: %w", err)
			}
		}
		fd, err = unix.Openat(pfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err == nil && serr != nil {
			var st unix.Stat_t
			if unix.Fstat(fd, &st) == nil {
				d.created(&st)
			}
		}
	}
	if err != nil {
		return fmt.Errorf("open directory: %w", err)
	}
	defer func() { _ = unix.Close(fd) }()
	if err := d.setMetaFd(fd, m); err != nil {
		return err
	}
	d.dirTimes = append(d.dirTimes, dirTime{p: p, mtime: m.mtime, atime: m.atime})
	return nil
}

func (d *dirfs) create(p []string, m meta, size int64, data io.Reader) error {
	pfd, name, err := d.newChild(p)
	if err != nil {
		return err
	}
	defer func() { _ = unix.Close(pfd) }()
	if err := removeAt(pfd, name); err != nil {
		return err
	}
	fd, err := unix.Openat(pfd, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("create: %w", err)
	}
	f := os.NewFile(uintptr(fd), name)
	defer f.Close()
	if size > 0 {
		w := sparse.NewWriter(f, -1) // zero blocks stay holes
		buf := getBuf()
		n, err := io.CopyBuffer(w, io.LimitReader(data, size), *buf)
		putBuf(buf)
		if err == nil && n < size {
			err = io.ErrUnexpectedEOF
		}
		if err == nil {
			err = w.Finish()
		}
		if err != nil {
			return fmt.Errorf("write content (%d of %d bytes): %w", n, size, err)
		}
	}
	if err := d.setMetaFd(fd, m); err != nil {
		return err
	}
	return setTimesAt(pfd, name, m)
}

func (d *dirfs) symlink(p []string, target string, m meta) error {
	pfd, name, err := d.newChild(p)
	if err != nil {
		return err
	}
	defer func() { _ = unix.Close(pfd) }()
	if err := removeAt(pfd, name); err != nil {
		return err
	}
	if err := unix.Symlinkat(target, pfd, name); err != nil {
		return fmt.Errorf("symlink: %w", err)
	}
	return d.setMetaAt(pfd, name, m, false)
}

func (d *dirfs) mknod(p []string, typ byte, m meta) error {
	pfd, name, err := d.newChild(p)
	if err != nil {
		return err
	}
	defer func() { _ = unix.Close(pfd) }()
	if err := removeAt(pfd, name); err != nil {
		return err
	}
	var mode uint32
	switch typ {
	case '3':
		mode = unix.S_IFCHR
	case '4':
		mode = unix.S_IFBLK
	default:
		mode = unix.S_IFIFO
	}
	if err := unix.Mknodat(pfd, name, mode|0o600, int(unix.Mkdev(m.major, m.minor))); err != nil {
		return fmt.Errorf("mknod: %w", err)
	}
	return d.setMetaAt(pfd, name, m, true)
}

func (d *dirfs) link(p, target []string) error {
	tfd, tname, err := d.parentOf(target, false)
	if err != nil {
		return fmt.Errorf("hardlink target %s: %w", joinPath(target), err)
	}
	if tfd < 0 {
		return invalid("hardlink target %s does not exist", joinPath(target))
	}
	defer func() { _ = unix.Close(tfd) }()
	var tst unix.Stat_t
	if err := unix.Fstatat(tfd, tname, &tst, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return invalid("hardlink target %s does not exist", joinPath(target))
	}
	if tst.Mode&unix.S_IFMT == unix.S_IFDIR {
		return invalid("hardlink target %s is a directory", joinPath(target))
	}
	pfd, name, err := d.newChild(p)
	if err != nil {
		return err
	}
	defer func() { _ = unix.Close(pfd) }()
	var st unix.Stat_t
	if unix.Fstatat(pfd, name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Dev == tst.Dev && st.Ino == tst.Ino {
		return nil
	}
	if err := removeAt(pfd, name); err != nil {
		return err
	}
	if err := unix.Linkat(tfd, tname, pfd, name, 0); err != nil {
		return fmt.Errorf("link: %w", err)
	}
	return nil
}

// setMetaFd sets owner, mode and xattrs through an open file or directory.
func (d *dirfs) setMetaFd(fd int, m meta) error {
	if err := unix.Fchown(fd, m.uid, m.gid); err != nil {
		return fmt.Errorf("chown: %w", err)
	}
	if err := unix.Fchmod(fd, m.mode); err != nil {
		return fmt.Errorf("chmod: %w", err)
	}
	for k, v := range m.xattrs {
		if err := unix.Fsetxattr(fd, k, v, 0); err != nil {
			if err := d.xattrErr(k, err); err != nil {
				return err
			}
		}
	}
	return nil
}

// setMetaAt sets owner, mode (unless a symlink), xattrs and times of
// name in pfd without following it.
func (d *dirfs) setMetaAt(pfd int, name string, m meta, chmod bool) error {
	if err := unix.Fchownat(pfd, name, m.uid, m.gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("chown: %w", err)
	}
	if chmod {
		if err := unix.Fchmodat(pfd, name, m.mode, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("chmod: %w", err)
		}
	}
	if len(m.xattrs) > 0 {
		// The magic link names pfd, already resolved in-root; the final
		// component is not followed (lsetxattr).
		p := fmt.Sprintf("/proc/self/fd/%d/%s", pfd, name)
		for k, v := range m.xattrs {
			if err := unix.Lsetxattr(p, k, v, 0); err != nil {
				if err := d.xattrErr(k, err); err != nil {
					return err
				}
			}
		}
	}
	return setTimesAt(pfd, name, m)
}

func (d *dirfs) xattrErr(k string, err error) error {
	if errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.EPERM) && strings.HasPrefix(k, "user.") {
		d.log.Warn("skipping xattr the target filesystem does not support", "xattr", k, "err", err)
		return nil
	}
	return fmt.Errorf("setxattr %s: %w", k, err)
}

func setTimesAt(pfd int, name string, m meta) error {
	at := m.atime
	if at.IsZero() {
		at = m.mtime
	}
	ts := []unix.Timespec{unix.NsecToTimespec(at.UnixNano()), unix.NsecToTimespec(m.mtime.UnixNano())}
	if err := unix.UtimesNanoAt(pfd, name, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("set times: %w", err)
	}
	return nil
}

// endLayer sets the mtimes of the layer's directories, after their
// children were written.
func (d *dirfs) endLayer() error {
	clear(d.cleared)
	times := d.dirTimes
	d.dirTimes = nil
	for i := len(times) - 1; i >= 0; i-- {
		t := times[i]
		if len(t.p) == 0 {
			if err := setTimesAt(d.root, ".", meta{mtime: t.mtime, atime: t.atime}); err != nil {
				return err
			}
			continue
		}
		pfd, name, err := d.parentOf(t.p, false)
		if err != nil || pfd < 0 {
			continue
		}
		err = setTimesAt(pfd, name, meta{mtime: t.mtime, atime: t.atime})
		_ = unix.Close(pfd)
		if err != nil && !errors.Is(err, unix.ENOENT) {
			return err
		}
	}
	return nil
}

var _ backend = (*dirfs)(nil)
