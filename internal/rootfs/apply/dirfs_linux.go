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
)

// dirfs applies layers to a host directory. Every operation starts from
// the root's fd: parents are opened with openat2(RESOLVE_IN_ROOT |
// RESOLVE_NO_MAGICLINKS), or, when a missing parent must be created, by
// an fd-by-fd walk with the same in-root semantics; the final component
// is always handled with *at calls that do not follow it.
type dirfs struct {
	root     int
	log      *slog.Logger
	dirTimes []dirTime
}

type dirTime struct {
	p            []string
	mtime, atime time.Time
}

const resolveInRoot = unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS

func newDirfs(dir string, log *slog.Logger) (*dirfs, error) {
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", dir, err)
	}
	return &dirfs{root: fd, log: log}, nil
}

func (d *dirfs) close() error { return unix.Close(d.root) }

// openDir returns an O_PATH fd of directory p resolved in-root. Without
// create a missing directory returns -1 and no error.
func (d *dirfs) openDir(p []string, create bool) (int, error) {
	if len(p) == 0 {
		return unix.FcntlInt(uintptr(d.root), unix.F_DUPFD_CLOEXEC, 0)
	}
	how := &unix.OpenHow{Flags: unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC, Resolve: resolveInRoot}
	var err error
	for range 8 {
		var fd int
		fd, err = unix.Openat2(d.root, strings.Join(p, "/"), how)
		if err == nil {
			return fd, nil
		}
		if !errors.Is(err, unix.EAGAIN) && !errors.Is(err, unix.EINTR) {
			break
		}
	}
	switch {
	case errors.Is(err, unix.ENOENT), errors.Is(err, unix.ENOTDIR):
		if !create {
			return -1, nil
		}
		return d.walkCreate(p)
	case errors.Is(err, unix.ELOOP):
		return -1, errLoop
	}
	return -1, fmt.Errorf("open %s: %w", joinPath(p), err)
}

// walkCreate resolves p one component at a time from the root, following
// symlinks in-root (absolute targets restart at the root, ".." never goes
// above it) and creating missing directories.
func (d *dirfs) walkCreate(p []string) (int, error) {
	root, err := d.openDir(nil, false)
	if err != nil {
		return -1, err
	}
	stack := []int{root}
	closeAll := func() {
		for _, fd := range stack {
			_ = unix.Close(fd)
		}
	}
	rest := append([]string(nil), p...)
	follows := 0
	for len(rest) > 0 {
		c := rest[0]
		rest = rest[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			if len(stack) > 1 {
				_ = unix.Close(stack[len(stack)-1])
				stack = stack[:len(stack)-1]
			}
			continue
		}
		cur := stack[len(stack)-1]
		var st unix.Stat_t
		err := unix.Fstatat(cur, c, &st, unix.AT_SYMLINK_NOFOLLOW)
		if errors.Is(err, unix.ENOENT) {
			if err := unix.Mkdirat(cur, c, 0o755); err != nil && !errors.Is(err, unix.EEXIST) {
				closeAll()
				return -1, fmt.Errorf("mkdir %s: %w", c, err)
			}
			if err := unix.Fchmodat(cur, c, 0o755, unix.AT_SYMLINK_NOFOLLOW); err != nil {
				closeAll()
				return -1, fmt.Errorf("chmod %s: %w", c, err)
			}
			err = unix.Fstatat(cur, c, &st, unix.AT_SYMLINK_NOFOLLOW)
		}
		if err != nil {
			closeAll()
			return -1, fmt.Errorf("stat %s: %w", c, err)
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFDIR:
			fd, err := unix.Openat(cur, c, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			if err != nil {
				closeAll()
				return -1, fmt.Errorf("open %s: %w", c, err)
			}
			stack = append(stack, fd)
		case unix.S_IFLNK:
			follows++
			if follows > maxSymlinkFollows {
				closeAll()
				return -1, errLoop
			}
			target, err := readlinkat(cur, c)
			if err != nil {
				closeAll()
				return -1, err
			}
			if strings.HasPrefix(target, "/") {
				for _, fd := range stack[1:] {
					_ = unix.Close(fd)
				}
				stack = stack[:1]
			}
			rest = append(strings.Split(target, "/"), rest...)
		default:
			closeAll()
			return -1, errNotDir
		}
	}
	top := stack[len(stack)-1]
	for _, fd := range stack[:len(stack)-1] {
		_ = unix.Close(fd)
	}
	return top, nil
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
	fd, err := d.openDir(p[:len(p)-1], create)
	return fd, p[len(p)-1], err
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

func (d *dirfs) clearDir(p []string, keep func([]string) bool) error {
	dfd, err := d.openDir(p, false)
	if err != nil || dfd < 0 {
		return err
	}
	fd, err := unix.Openat(dfd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	_ = unix.Close(dfd)
	if err != nil {
		return fmt.Errorf("open %s: %w", joinPath(p), err)
	}
	defer func() { _ = unix.Close(fd) }()
	return clearAt(fd, p, keep)
}

func clearAt(fd int, rel []string, keep func([]string) bool) error {
	names, err := readNames(fd)
	if err != nil {
		return err
	}
	for _, n := range names {
		crel := append(append([]string(nil), rel...), n)
		if !keep(crel) {
			if err := removeAt(fd, n); err != nil {
				return err
			}
			continue
		}
		sub, err := unix.Openat(fd, n, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			continue // kept non-directory
		}
		err = clearAt(sub, crel, keep)
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
		pfd, name, err = d.parentOf(p, true)
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
	pfd, name, err := d.parentOf(p, true)
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
		n, err := io.CopyN(f, data, size)
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
	pfd, name, err := d.parentOf(p, true)
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
	pfd, name, err := d.parentOf(p, true)
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
	pfd, name, err := d.parentOf(p, true)
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
