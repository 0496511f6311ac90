package buildctx

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/ferryvm/ferry/internal/errdefs"
)

// inRoot resolves paths as if the root were "/": ".." and absolute
// symlinks stop at the root.
const inRoot = unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS

// Root is a directory tree read with every path resolved inside it.
type Root struct {
	dir string
	fd  int
}

// OpenRoot opens dir as a Root.
func OpenRoot(dir string) (*Root, error) {
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", dir, err)
	}
	return &Root{dir: dir, fd: fd}, nil
}

// Close releases the root.
func (r *Root) Close() error { return unix.Close(r.fd) }

// Dir is the root's host path.
func (r *Root) Dir() string { return r.dir }

// Clean turns p (absolute or relative, as written in a Dockerfile) into a
// root-relative path ("" for the root).
func Clean(p string) string {
	return strings.TrimPrefix(path.Clean("/"+filepath.ToSlash(p)), "/")
}

func (r *Root) open(p string, flags int) (*os.File, error) {
	rel := Clean(p)
	if rel == "" {
		rel = "."
	}
	how := &unix.OpenHow{Flags: uint64(flags | unix.O_CLOEXEC), Resolve: inRoot}
	for {
		fd, err := unix.Openat2(r.fd, rel, how)
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
			continue
		}
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
			return nil, fmt.Errorf("%s: %w", p, fs.ErrNotExist)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		return os.NewFile(uintptr(fd), "/"+strings.TrimPrefix(rel, ".")), nil
	}
}

// Open opens p for reading, following symlinks inside the root.
func (r *Root) Open(p string) (*os.File, error) { return r.open(p, unix.O_RDONLY) }

// Stat describes p, following symlinks inside the root.
func (r *Root) Stat(p string) (fs.FileInfo, error) {
	f, err := r.open(p, unix.O_PATH)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.Stat()
}

// Lstat describes p without following its last component.
func (r *Root) Lstat(p string) (fs.FileInfo, error) {
	f, err := r.open(p, unix.O_PATH|unix.O_NOFOLLOW)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.Stat()
}

// Readlink returns the target of the symlink p.
func (r *Root) Readlink(p string) (string, error) {
	f, err := r.open(p, unix.O_PATH|unix.O_NOFOLLOW)
	if err != nil {
		return "", err
	}
	defer f.Close()
	buf := make([]byte, unix.PathMax)
	n, err := unix.Readlinkat(int(f.Fd()), "", buf)
	if err != nil {
		return "", fmt.Errorf("readlink %s: %w", p, err)
	}
	return string(buf[:n]), nil
}

// ReadDir lists the directory p (followed inside the root), sorted.
func (r *Root) ReadDir(p string) ([]string, error) {
	f, err := r.open(p, unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, fmt.Errorf("read dir %s: %w", p, err)
	}
	sort.Strings(names)
	return names, nil
}

// Resolve returns p with every symlink resolved inside the root (the path
// Open would reach), root-relative.
func (r *Root) Resolve(p string) (string, error) {
	f, err := r.open(p, unix.O_PATH)
	if err != nil {
		return "", err
	}
	defer f.Close()
	real, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", f.Fd()))
	if err != nil {
		return "", err
	}
	base, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", r.fd))
	if err != nil {
		return "", err
	}
	rel, err := filepath.Rel(base, real)
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return "", fmt.Errorf("%s resolves outside the root: %w", p, errdefs.ErrInvalidArgument)
	}
	if rel == "." {
		return "", nil
	}
	return filepath.ToSlash(rel), nil
}

// Prune removes from dir what ig excludes, without following symlinks.
func Prune(dir string, ig *Ignore) error {
	if ig == nil || ig.pm == nil {
		return nil
	}
	return prune(dir, "", ig, match{})
}

func prune(dir, rel string, ig *Ignore, parent match) error {
	ents, err := os.ReadDir(filepath.Join(dir, rel))
	if err != nil {
		return err
	}
	for _, e := range ents {
		child := e.Name()
		if rel != "" {
			child = rel + "/" + e.Name()
		}
		skip, m, err := ig.excluded(child, parent)
		if err != nil {
			return err
		}
		switch {
		case skip && (!e.IsDir() || ig.canSkipDir()):
			if err := os.RemoveAll(filepath.Join(dir, child)); err != nil {
				return err
			}
		case e.IsDir():
			if err := prune(dir, child, ig, m); err != nil {
				return err
			}
			if skip {
				// Excluded but holding re-included entries: keep it only
				// if something survived.
				_ = os.Remove(filepath.Join(dir, child))
			}
		}
	}
	return nil
}
