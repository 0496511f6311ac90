package build

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"syscall"
	"time"

	"github.com/ferryvm/ferry/internal/build/layer"
	"github.com/ferryvm/ferry/internal/guest"
)

// The builder VM speaks tree streams (guest.TreeWriter); layers are tars.
// These convert between the two on the host.

const paxXattr = "SCHILY.xattr."

var treeToTarType = map[byte]byte{
	guest.TreeReg: tar.TypeReg, guest.TreeLink: tar.TypeLink, guest.TreeSymlink: tar.TypeSymlink,
	guest.TreeChar: tar.TypeChar, guest.TreeBlock: tar.TypeBlock, guest.TreeDir: tar.TypeDir, guest.TreeFifo: tar.TypeFifo,
}

// treeToTar writes the tree stream r as tar entries on w.
func treeToTar(r io.Reader, w *layer.TarWriter) error {
	tr := guest.NewTreeReader(r)
	buf := make([]byte, 256<<10)
	for {
		e, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		typ, ok := treeToTarType[e.Type]
		if !ok {
			return fmt.Errorf("tree stream: %s: unknown type %q", e.Name, e.Type)
		}
		h := &tar.Header{Name: e.Name, Typeflag: typ, Mode: e.Mode, Uid: e.UID, Gid: e.GID, Size: e.Size,
			ModTime: time.Unix(0, e.MtimeNS), Linkname: e.Link, Devmajor: e.Major, Devminor: e.Minor}
		if typ != tar.TypeReg {
			h.Size = 0
		}
		if typ == tar.TypeDir {
			h.Name += "/"
		}
		for k, v := range e.Xattrs {
			if h.PAXRecords == nil {
				h.PAXRecords = map[string]string{}
			}
			h.PAXRecords[paxXattr+k] = v
		}
		if err := w.WriteHeader(h); err != nil {
			return err
		}
		if h.Size > 0 {
			if _, err := io.CopyBuffer(w, tr, buf); err != nil {
				return err
			}
		}
	}
}

var tarToTreeType = map[byte]byte{
	tar.TypeReg: guest.TreeReg, tar.TypeRegA: guest.TreeReg, tar.TypeLink: guest.TreeLink, //nolint:staticcheck // TypeRegA: old writers still emit it
	tar.TypeSymlink: guest.TreeSymlink, tar.TypeChar: guest.TreeChar, tar.TypeBlock: guest.TreeBlock,
	tar.TypeDir: guest.TreeDir, tar.TypeFifo: guest.TreeFifo,
}

// tarToTree converts the uncompressed layer tar r into a tree stream on w.
func tarToTree(r io.Reader, w io.Writer) error {
	tw := guest.NewTreeWriter(w)
	tr := tar.NewReader(r)
	buf := make([]byte, 256<<10)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return tw.Close()
		}
		if err != nil {
			return fmt.Errorf("read layer: %w", err)
		}
		typ, ok := tarToTreeType[h.Typeflag]
		if !ok {
			continue // PAX globals, GNU extras: nothing to create
		}
		e := &guest.TreeEntry{Name: strings.TrimSuffix(layerName(h.Name), "/"), Type: typ, Mode: h.Mode & 0o7777, UID: h.Uid, GID: h.Gid,
			MtimeNS: h.ModTime.UnixNano(), Link: h.Linkname, Major: h.Devmajor, Minor: h.Devminor}
		if typ == guest.TreeReg {
			e.Size = h.Size
		}
		if typ == guest.TreeLink {
			e.Link = layerName(h.Linkname)
		}
		for k, v := range h.PAXRecords {
			if name, ok := strings.CutPrefix(k, paxXattr); ok {
				if e.Xattrs == nil {
					e.Xattrs = map[string]string{}
				}
				e.Xattrs[name] = v
			}
		}
		if e.Name == "" {
			continue
		}
		if err := tw.WriteEntry(e); err != nil {
			return err
		}
		if e.Size > 0 {
			if _, err := io.CopyBuffer(tw, tr, buf); err != nil {
				return err
			}
		}
	}
}

func layerName(n string) string {
	return strings.TrimPrefix(strings.TrimPrefix(n, "./"), "/")
}

// sourceToTree writes the subtree rel of src as a tree stream (a bind
// mount's source), symlinks as links.
func sourceToTree(src layer.Source, rel string, w io.Writer) error {
	tw := guest.NewTreeWriter(w)
	buf := make([]byte, 256<<10)
	fi, err := src.Stat(rel)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		// A single file: a tree holding just it, under its own name.
		if err := writeSource(tw, src, rel, baseName(rel), fi, buf); err != nil {
			return err
		}
		return tw.Close()
	}
	var walk func(dir, out string) error
	walk = func(dir, out string) error {
		names, err := src.ReadDir(dir)
		if err != nil {
			return err
		}
		for _, n := range names {
			p, o := join(dir, n), join(out, n)
			fi, err := src.Lstat(p)
			if err != nil {
				return err
			}
			if err := writeSource(tw, src, p, o, fi, buf); err != nil {
				return err
			}
			if fi.IsDir() {
				if err := walk(p, o); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if err := walk(rel, ""); err != nil {
		return err
	}
	return tw.Close()
}

func writeSource(tw *guest.TreeWriter, src layer.Source, p, out string, fi fs.FileInfo, buf []byte) error {
	e := &guest.TreeEntry{Name: out, Mode: int64(fi.Mode().Perm()), MtimeNS: fi.ModTime().UnixNano()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		e.UID, e.GID, e.Mode = int(st.Uid), int(st.Gid), int64(st.Mode&0o7777)
	}
	switch {
	case fi.IsDir():
		e.Type = guest.TreeDir
	case fi.Mode()&fs.ModeSymlink != 0:
		l, err := src.Readlink(p)
		if err != nil {
			return err
		}
		e.Type, e.Link = guest.TreeSymlink, l
	case fi.Mode().IsRegular():
		e.Type, e.Size = guest.TreeReg, fi.Size()
	default:
		return nil
	}
	if err := tw.WriteEntry(e); err != nil {
		return err
	}
	if e.Type == guest.TreeReg && e.Size > 0 {
		f, err := src.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		n, err := io.CopyBuffer(tw, io.LimitReader(f, e.Size), buf)
		if err == nil && n != e.Size {
			err = fmt.Errorf("%s changed size while being read", p)
		}
		return err
	}
	return nil
}

func join(a, b string) string {
	if a == "" || a == "." {
		return b
	}
	return a + "/" + b
}

func baseName(p string) string {
	if i := strings.LastIndex(p, "/"); i >= 0 {
		return p[i+1:]
	}
	return p
}
