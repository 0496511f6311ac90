package apply

import (
	"archive/tar"
	"fmt"
	"strings"
	"time"

	"github.com/ferryvm/ferry/internal/errdefs"
)

// OCI whiteout names.
const (
	whiteoutPrefix = ".wh."
	opaqueMarker   = ".wh..wh..opq"
	maxNameLen     = 255 // ext4 and most Linux filesystems
	maxLinkTarget  = 4095
	maxDevMajor    = 1<<12 - 1 // Linux dev_t: 12-bit major, 20-bit minor
	maxDevMinor    = 1<<20 - 1
)

// EntryError is a rejected layer entry. It names the layer (its
// compressed digest, or its diff_id) and the entry as written in the tar.
type EntryError struct {
	Layer string
	Entry string
	Err   error
}

func (e *EntryError) Error() string {
	return fmt.Sprintf("layer %s: entry %q: %v", e.Layer, e.Entry, e.Err)
}

func (e *EntryError) Unwrap() error { return e.Err }

func invalid(format string, args ...any) error {
	return fmt.Errorf(format+": %w", append(args, errdefs.ErrInvalidArgument)...)
}

type opKind int

const (
	opDir opKind = iota
	opFile
	opSymlink
	opLink
	opNode // char, block, fifo
	opWhiteout
	opOpaque
)

// meta is what an entry says about its inode besides type and content.
type meta struct {
	mode         uint32 // permission bits, including setuid, setgid and sticky
	uid, gid     int
	mtime, atime time.Time
	xattrs       map[string][]byte
	major, minor uint32
}

// op is one validated tar entry.
type op struct {
	kind     opKind
	typ      byte     // tar.TypeDir, TypeReg, TypeSymlink, TypeChar, TypeBlock, TypeFifo
	path     []string // cleaned components inside the root; empty means the root
	meta     meta
	linkname string   // symlink target, verbatim (absolute targets are in-root)
	link     []string // hardlink target, cleaned
	size     int64
}

// cleanPath turns a tar name into components inside the root: leading "/"
// and "./" and empty or "." components are dropped; ".." is refused.
func cleanPath(name string) ([]string, error) {
	if name == "" {
		return nil, invalid("empty name")
	}
	if strings.IndexByte(name, 0) >= 0 {
		return nil, invalid("name contains NUL")
	}
	var out []string
	for _, c := range strings.Split(name, "/") {
		switch c {
		case "", ".":
			continue
		case "..":
			return nil, invalid("name contains \"..\"")
		}
		if len(c) > maxNameLen {
			return nil, invalid("name component longer than %d bytes", maxNameLen)
		}
		out = append(out, c)
	}
	return out, nil
}

// forbiddenXattr reports xattrs a layer may not carry: overlayfs's own
// (they would change how the guest's overlay reads the base).
func forbiddenXattr(name string) bool {
	return strings.HasPrefix(name, "trusted.overlay.") || strings.HasPrefix(name, "user.overlay.")
}

// parseEntry validates hdr and turns it into an op.
func parseEntry(hdr *tar.Header) (op, error) {
	p, err := cleanPath(hdr.Name)
	if err != nil {
		return op{}, err
	}
	o := op{path: p}
	if len(p) > 0 {
		base := p[len(p)-1]
		if base == opaqueMarker {
			o.kind, o.path = opOpaque, p[:len(p)-1]
			return o, nil
		}
		if strings.HasPrefix(base, whiteoutPrefix) {
			target := base[len(whiteoutPrefix):]
			if target == "" || target == "." || target == ".." || strings.HasPrefix(target, whiteoutPrefix) {
				return op{}, invalid("invalid whiteout")
			}
			o.kind = opWhiteout
			o.path = append(append([]string(nil), p[:len(p)-1]...), target)
			return o, nil
		}
	}
	if hdr.Uid < 0 || hdr.Gid < 0 || int64(hdr.Uid) > 1<<32-2 || int64(hdr.Gid) > 1<<32-2 {
		return op{}, invalid("uid/gid out of range")
	}
	o.meta = meta{
		mode:  uint32(hdr.Mode) & 0o7777,
		uid:   hdr.Uid,
		gid:   hdr.Gid,
		mtime: hdr.ModTime,
		atime: hdr.AccessTime,
	}
	for k, v := range hdr.PAXRecords {
		name, ok := strings.CutPrefix(k, "SCHILY.xattr.")
		if !ok {
			continue
		}
		if forbiddenXattr(name) {
			return op{}, invalid("forbidden xattr %q", name)
		}
		if o.meta.xattrs == nil {
			o.meta.xattrs = map[string][]byte{}
		}
		o.meta.xattrs[name] = []byte(v)
	}
	if len(p) == 0 && hdr.Typeflag != tar.TypeDir {
		return op{}, invalid("non-directory entry for the root")
	}
	switch hdr.Typeflag {
	case tar.TypeDir:
		o.kind, o.typ = opDir, tar.TypeDir
	case tar.TypeReg, tar.TypeGNUSparse: // tar.Reader reports the old TypeRegA as TypeReg
		if hdr.Size < 0 {
			return op{}, invalid("negative size")
		}
		o.kind, o.typ, o.size = opFile, tar.TypeReg, hdr.Size
	case tar.TypeSymlink:
		if hdr.Linkname == "" || len(hdr.Linkname) > maxLinkTarget || strings.IndexByte(hdr.Linkname, 0) >= 0 {
			return op{}, invalid("invalid symlink target")
		}
		o.kind, o.typ, o.linkname = opSymlink, tar.TypeSymlink, hdr.Linkname
	case tar.TypeLink:
		t, err := cleanPath(hdr.Linkname)
		if err != nil {
			return op{}, fmt.Errorf("hardlink target %q: %w", hdr.Linkname, err)
		}
		if len(t) == 0 {
			return op{}, invalid("hardlink to the root")
		}
		o.kind, o.link = opLink, t
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		if hdr.Typeflag != tar.TypeFifo {
			if hdr.Devmajor < 0 || hdr.Devminor < 0 || hdr.Devmajor > maxDevMajor || hdr.Devminor > maxDevMinor {
				return op{}, invalid("device number %d:%d out of range", hdr.Devmajor, hdr.Devminor)
			}
			o.meta.major, o.meta.minor = uint32(hdr.Devmajor), uint32(hdr.Devminor)
		}
		o.kind, o.typ = opNode, hdr.Typeflag
	default:
		return op{}, invalid("unsupported entry type %q", hdr.Typeflag)
	}
	return o, nil
}

// errNotDir and errLoop are path-resolution failures inside the tree.
var (
	errNotDir = fmt.Errorf("a parent is not a directory: %w", errdefs.ErrInvalidArgument)
	errLoop   = fmt.Errorf("too many levels of symbolic links: %w", errdefs.ErrInvalidArgument)
)

func joinPath(p []string) string {
	if len(p) == 0 {
		return "."
	}
	return strings.Join(p, "/")
}
