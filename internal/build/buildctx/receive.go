package buildctx

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ferryvm/ferry/internal/errdefs"
)

// MaxEntries bounds how many entries a received context may hold.
const MaxEntries = 4 << 20

// ErrBadContext is wrapped by every error about a malformed or hostile
// context stream.
var ErrBadContext = errors.New("bad build context")

// beneath resolves a path without leaving the root and without following
// any symlink on the way.
const beneath = unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS

// Receive extracts the tar stream r into the existing, empty directory
// dir (see the package doc for the rules). It stops at the first bad
// entry; dir then holds a partial tree the caller removes.
func Receive(ctx context.Context, r io.Reader, dir string) (Stats, error) {
	var st Stats
	root, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return st, fmt.Errorf("build context: %w", err)
	}
	defer unix.Close(root)
	x := &extractor{root: root, buf: make([]byte, 256<<10)}
	tr := tar.NewReader(r)
	for {
		if err := ctx.Err(); err != nil {
			return st, err
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return st, fmt.Errorf("build context: read tar: %w: %w: %w", err, ErrBadContext, errdefs.ErrInvalidArgument)
		}
		if st.Files++; st.Files > MaxEntries {
			return st, fmt.Errorf("build context: more than %d entries: %w: %w", MaxEntries, ErrBadContext, errdefs.ErrInvalidArgument)
		}
		n, err := x.entry(hdr, tr)
		st.Bytes += n
		if err != nil {
			return st, fmt.Errorf("build context: %s: %w", hdr.Name, err)
		}
	}
	x.finishDirs()
	return st, nil
}

type dirTime struct {
	parent []string
	name   string
	mtime  time.Time
}

type extractor struct {
	root int
	buf  []byte
	dirs []dirTime
}

// clean splits a tar name into its components, refusing absolute names
// and "..".
func clean(name string) ([]string, error) {
	if strings.HasPrefix(name, "/") || strings.ContainsRune(name, 0) {
		return nil, fmt.Errorf("absolute or invalid name: %w: %w", ErrBadContext, errdefs.ErrInvalidArgument)
	}
	var out []string
	for _, c := range strings.Split(name, "/") {
		switch c {
		case "", ".":
		case "..":
			return nil, fmt.Errorf("name leaves the context (..): %w: %w", ErrBadContext, errdefs.ErrInvalidArgument)
		default:
			out = append(out, c)
		}
	}
	return out, nil
}

// parent opens (creating as needed) the directory holding p's last
// component, refusing any symlink on the way.
func (x *extractor) parent(p []string) (int, error) {
	fd, err := unix.FcntlInt(uintptr(x.root), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	for _, c := range p[:len(p)-1] {
		next, err := openBeneath(fd, c, unix.O_PATH|unix.O_DIRECTORY)
		if errors.Is(err, unix.ENOENT) {
			if err := unix.Mkdirat(fd, c, 0o755); err != nil && !errors.Is(err, unix.EEXIST) {
				unix.Close(fd)
				return -1, err
			}
			next, err = openBeneath(fd, c, unix.O_PATH|unix.O_DIRECTORY)
		}
		unix.Close(fd)
		if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.EXDEV) {
			return -1, fmt.Errorf("a parent is a symlink or not a directory: %w: %w", ErrBadContext, errdefs.ErrInvalidArgument)
		}
		if err != nil {
			return -1, err
		}
		fd = next
	}
	return fd, nil
}

func openBeneath(dirfd int, p string, flags int) (int, error) {
	how := &unix.OpenHow{Flags: uint64(flags | unix.O_CLOEXEC | unix.O_NOFOLLOW), Resolve: beneath}
	for {
		fd, err := unix.Openat2(dirfd, p, how)
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
			continue
		}
		return fd, err
	}
}

// replace removes whatever non-directory sits at name.
func replace(pfd int, name string) error {
	err := unix.Unlinkat(pfd, name, 0)
	if err == nil || errors.Is(err, unix.ENOENT) {
		return nil
	}
	if errors.Is(err, unix.EISDIR) || errors.Is(err, unix.EPERM) {
		return fmt.Errorf("a directory is replaced by a file: %w: %w", ErrBadContext, errdefs.ErrInvalidArgument)
	}
	return err
}

func (x *extractor) entry(hdr *tar.Header, r io.Reader) (int64, error) {
	p, err := clean(hdr.Name)
	if err != nil {
		return 0, err
	}
	if len(p) == 0 {
		return 0, nil // the root itself
	}
	pfd, err := x.parent(p)
	if err != nil {
		return 0, err
	}
	defer unix.Close(pfd)
	name := p[len(p)-1]
	mode := uint32(hdr.Mode) & 0o7777
	switch hdr.Typeflag {
	case tar.TypeDir:
		if err := unix.Mkdirat(pfd, name, 0o700); err != nil && !errors.Is(err, unix.EEXIST) {
			return 0, err
		}
		fd, err := openBeneath(pfd, name, unix.O_RDONLY|unix.O_DIRECTORY)
		if err != nil {
			return 0, fmt.Errorf("not a directory: %w: %w", ErrBadContext, errdefs.ErrInvalidArgument)
		}
		defer unix.Close(fd)
		if err := unix.Fchown(fd, hdr.Uid, hdr.Gid); err != nil {
			return 0, err
		}
		if err := unix.Fchmod(fd, mode); err != nil {
			return 0, err
		}
		x.dirs = append(x.dirs, dirTime{parent: p[:len(p)-1], name: name, mtime: hdr.ModTime})
		return 0, nil
	case tar.TypeReg, tar.TypeLink:
		if err := replace(pfd, name); err != nil {
			return 0, err
		}
		src := r
		if hdr.Typeflag == tar.TypeLink {
			f, err := x.openTarget(hdr.Linkname)
			if err != nil {
				return 0, err
			}
			defer f.Close()
			src = f
		}
		fd, err := unix.Openat(pfd, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if err != nil {
			return 0, err
		}
		f := os.NewFile(uintptr(fd), name)
		defer f.Close()
		n, err := io.CopyBuffer(f, src, x.buf)
		if err != nil {
			return n, err
		}
		if err := f.Chown(hdr.Uid, hdr.Gid); err != nil {
			return n, err
		}
		if err := unix.Fchmod(fd, mode); err != nil {
			return n, err
		}
		ts := []unix.Timespec{unix.NsecToTimespec(hdr.ModTime.UnixNano()), unix.NsecToTimespec(hdr.ModTime.UnixNano())}
		return n, unix.UtimesNanoAt(pfd, name, ts, unix.AT_SYMLINK_NOFOLLOW)
	case tar.TypeSymlink:
		if err := replace(pfd, name); err != nil {
			return 0, err
		}
		if err := unix.Symlinkat(hdr.Linkname, pfd, name); err != nil {
			return 0, err
		}
		if err := unix.Fchownat(pfd, name, hdr.Uid, hdr.Gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return 0, err
		}
		ts := []unix.Timespec{unix.NsecToTimespec(hdr.ModTime.UnixNano()), unix.NsecToTimespec(hdr.ModTime.UnixNano())}
		return 0, unix.UtimesNanoAt(pfd, name, ts, unix.AT_SYMLINK_NOFOLLOW)
	default:
		return 0, nil // devices, fifos, sockets: not part of a context
	}
}

// openTarget opens a hardlink's target, an earlier regular file.
func (x *extractor) openTarget(name string) (*os.File, error) {
	p, err := clean(name)
	if err != nil || len(p) == 0 {
		return nil, fmt.Errorf("hardlink target %q: %w: %w", name, ErrBadContext, errdefs.ErrInvalidArgument)
	}
	fd, err := openBeneath(x.root, path.Join(p...), unix.O_RDONLY)
	if err != nil {
		return nil, fmt.Errorf("hardlink target %q: %v: %w: %w", name, err, ErrBadContext, errdefs.ErrInvalidArgument)
	}
	f := os.NewFile(uintptr(fd), name)
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("hardlink target %q is not a regular file: %w: %w", name, ErrBadContext, errdefs.ErrInvalidArgument)
	}
	return f, nil
}

// finishDirs sets directory mtimes once their children are in place.
func (x *extractor) finishDirs() {
	for i := len(x.dirs) - 1; i >= 0; i-- {
		d := x.dirs[i]
		fd := x.root
		if len(d.parent) > 0 {
			var err error
			if fd, err = openBeneath(x.root, path.Join(d.parent...), unix.O_PATH|unix.O_DIRECTORY); err != nil {
				continue
			}
		}
		ts := []unix.Timespec{unix.NsecToTimespec(d.mtime.UnixNano()), unix.NsecToTimespec(d.mtime.UnixNano())}
		_ = unix.UtimesNanoAt(fd, d.name, ts, unix.AT_SYMLINK_NOFOLLOW)
		if fd != x.root {
			unix.Close(fd)
		}
	}
}
