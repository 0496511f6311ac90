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
	maxNameLen     = 255  // ext4 and most Linux filesystems
	pathMax        = 4096 // Linux PATH_MAX, the terminating NUL included
	maxLinkTarget  = pathMax - 1
	maxDevMajor    = 1<<12 - 1 // Linux dev_t: 12-bit major, 20-bit minor
	maxDevMinor    = 1<<20 - 1
	xattrNameMax   = 255      // Linux XATTR_NAME_MAX
	xattrSizeMax   = 64 << 10 // Linux XATTR_SIZE_MAX: one value
	xattrListMax   = 64 << 10 // Linux XATTR_LIST_MAX: all names, each NUL-terminated
	// maxFileSize is the largest file hcsshim's ext4 writer holds (4 ×
	// 340 extents of 128 MiB), rounded down.
	maxFileSize = 128 << 30
	// entryCost and componentCost are what an entry is charged against
	// Limits.MaxMetadata besides its strings: the entry record, the tree
	// node and the layer's bookkeeping, measured on amd64.
	entryCost     = 512
	componentCost = 64
)

// EntryError is a rejected layer entry. It names the layer (its
// compressed digest, or its diff_id) and the entry as written in the tar.
type EntryError struct {
	Layer string
	Entry string
	Err   error
}

func (e *EntryError) Error() string {
	return fmt.Sprintf("layer %s: entry %s: %v", e.Layer, shortName(e.Entry), e.Err)
}

// shortName quotes a name for an error line, eliding the middle of a
// long one so that a hostile 1 MiB name still makes one short line.
func shortName(name string) string {
	const head, tail = 96, 32
	if len(name) <= head+tail+32 {
		return fmt.Sprintf("%q", name)
	}
	return fmt.Sprintf("%q…(%d bytes)…%q", name[:head], len(name), name[len(name)-tail:])
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
	spooled      map[string]section // Flatten: large xattr values, kept in the layer's spool
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
	size     int64    // apparent size of a regular file
	sparse   bool     // a GNU sparse file: size includes holes not in the stream
	cost     int64    // charge against Limits.MaxMetadata
}

// cleanPath turns a tar name into components inside the root: leading "/"
// and "./" and empty or "." components are dropped; ".." is refused, and
// so are names longer than PATH_MAX or deeper than maxDepth (checked
// before the name is split, so a hostile name costs nothing).
func cleanPath(name string, maxDepth int) ([]string, error) {
	if name == "" {
		return nil, invalid("empty name")
	}
	if len(name) >= pathMax {
		return nil, invalid("path is %d bytes, longer than PATH_MAX (%d) allows", len(name), pathMax)
	}
	if strings.IndexByte(name, 0) >= 0 {
		return nil, invalid("name contains NUL")
	}
	if n := strings.Count(name, "/") + 1; n > maxDepth {
		if d := depthOf(name); d > maxDepth {
			return nil, invalid("path is %d levels deep, more than the limit of %d (--layer-max-depth)", d, maxDepth)
		}
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

// depthOf counts name's components other than "" and ".".
func depthOf(name string) int {
	n := 0
	for c := range strings.SplitSeq(name, "/") {
		if c != "" && c != "." {
			n++
		}
	}
	return n
}

// forbiddenXattr reports xattrs a layer may not carry: overlayfs's own
// (they would change how the guest's overlay reads the base).
func forbiddenXattr(name string) bool {
	return strings.HasPrefix(name, "trusted.overlay.") || strings.HasPrefix(name, "user.overlay.")
}

// isSparse reports a GNU sparse file (old GNU or PAX 0.0, 0.1, 1.0):
// hdr.Size is its apparent size, holes included.
func isSparse(hdr *tar.Header) bool {
	if hdr.Typeflag == tar.TypeGNUSparse {
		return true
	}
	for _, k := range []string{"GNU.sparse.major", "GNU.sparse.map", "GNU.sparse.realsize", "GNU.sparse.size"} {
		if _, ok := hdr.PAXRecords[k]; ok {
			return true
		}
	}
	return false
}

// parseEntry validates hdr against the per-entry limits and turns it into
// an op.
func parseEntry(hdr *tar.Header, maxDepth int) (op, error) {
	p, err := cleanPath(hdr.Name, maxDepth)
	if err != nil {
		return op{}, err
	}
	o := op{path: p, cost: entryCost + int64(len(hdr.Name)+len(p)*componentCost)}
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
	if err := parseXattrs(hdr, &o); err != nil {
		return op{}, err
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
		o.kind, o.typ, o.size, o.sparse = opFile, tar.TypeReg, hdr.Size, isSparse(hdr)
	case tar.TypeSymlink:
		if len(hdr.Linkname) > maxLinkTarget {
			return op{}, invalid("invalid symlink target: %d bytes, longer than PATH_MAX (%d) allows", len(hdr.Linkname), pathMax)
		}
		if hdr.Linkname == "" || strings.IndexByte(hdr.Linkname, 0) >= 0 {
			return op{}, invalid("invalid symlink target")
		}
		o.kind, o.typ, o.linkname = opSymlink, tar.TypeSymlink, hdr.Linkname
		o.cost += int64(len(hdr.Linkname) + strings.Count(hdr.Linkname, "/")*componentCost)
	case tar.TypeLink:
		t, err := cleanPath(hdr.Linkname, maxDepth)
		if err != nil {
			return op{}, fmt.Errorf("hardlink target %s: %w", shortName(hdr.Linkname), err)
		}
		o.cost += int64(len(hdr.Linkname) + len(t)*componentCost)
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

// parseXattrs takes the entry's SCHILY.xattr.* records within the
// kernel's own limits (a value of XATTR_SIZE_MAX, names of XATTR_NAME_MAX
// adding up to XATTR_LIST_MAX) and refuses overlayfs's.
func parseXattrs(hdr *tar.Header, o *op) error {
	list := 0
	for k, v := range hdr.PAXRecords {
		name, ok := strings.CutPrefix(k, "SCHILY.xattr.")
		if !ok {
			continue
		}
		switch {
		case forbiddenXattr(name):
			return invalid("forbidden xattr %q", name)
		case name == "" || len(name) > xattrNameMax:
			return invalid("xattr name of %d bytes: names are 1 to %d bytes (XATTR_NAME_MAX)", len(name), xattrNameMax)
		case len(v) > xattrSizeMax:
			return invalid("xattr %q is %d bytes, more than XATTR_SIZE_MAX (%d)", name, len(v), xattrSizeMax)
		}
		if list += len(name) + 1; list > xattrListMax {
			return invalid("xattr names add up to more than XATTR_LIST_MAX (%d bytes)", xattrListMax)
		}
		if o.meta.xattrs == nil {
			o.meta.xattrs = map[string][]byte{}
		}
		o.meta.xattrs[strings.Clone(name)] = []byte(v) // not the PAX header's buffer
		o.cost += int64(len(name)+len(v)) + componentCost
	}
	return nil
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

// maxSymlinkFollows is as Linux's path walk.
const maxSymlinkFollows = 40

// maxWalkSteps bounds the components one path resolution visits,
// symlink targets included, so that no entry costs more than a PATH_MAX
// worth of steps (Linux bounds a walk by its 40 follows only).
const maxWalkSteps = pathMax

var errWalk = invalid("resolving the path visits more than %d components", maxWalkSteps)

// where is a resolved path in the tree: its depth and its length in bytes.
type where struct {
	depth, length int32
}

func (w where) child(name string) where {
	if w.depth == 0 {
		return where{1, int32(min(len(name), pathMax))}
	}
	return where{w.depth + 1, int32(min(int(w.length)+1+len(name), pathMax))}
}

// check applies the path limits to a resolved path, which symlinks in
// parents can make deeper and longer than the entry's name.
func (w where) check(maxDepth int) error {
	if w.length >= pathMax {
		return invalid("resolved path is longer than PATH_MAX (%d) allows", pathMax)
	}
	if int(w.depth) > maxDepth {
		return invalid("resolved path is %d levels deep, more than the limit of %d (--layer-max-depth)", w.depth, maxDepth)
	}
	return nil
}
