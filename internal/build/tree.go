package build

import (
	"fmt"
	"io"
	"io/fs"
	"strings"
	"syscall"

	"github.com/ferryvm/ferry/internal/build/layer"
	"github.com/ferryvm/ferry/internal/guest"
)

// The builder VM speaks tree streams (guest.TreeWriter); layers are tars:
// package treetar converts between the two on the host.

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
