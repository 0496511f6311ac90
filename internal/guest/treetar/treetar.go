// Package treetar converts between guest tree streams (guest.TreeWriter,
// what ferry-init speaks: it links no tar implementation) and tars, on the
// host: builder layers and diffs, docker cp.
package treetar

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/ferryvm/ferry/internal/guest"
)

// TarWriter is where ToTar writes (a *tar.Writer, or one that normalizes
// headers).
type TarWriter interface {
	WriteHeader(h *tar.Header) error
	Write(b []byte) (int, error)
}

const paxXattr = "SCHILY.xattr."

var treeToTarType = map[byte]byte{
	guest.TreeReg: tar.TypeReg, guest.TreeLink: tar.TypeLink, guest.TreeSymlink: tar.TypeSymlink,
	guest.TreeChar: tar.TypeChar, guest.TreeBlock: tar.TypeBlock, guest.TreeDir: tar.TypeDir, guest.TreeFifo: tar.TypeFifo,
}

// ToTar writes the tree stream r as tar entries on w.
func ToTar(r io.Reader, w TarWriter) error {
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

// FromTar converts the uncompressed tar r into a tree stream on w. Names
// lose a leading "./" or "/".
func FromTar(r io.Reader, w io.Writer) error {
	tw := guest.NewTreeWriter(w)
	tr := tar.NewReader(r)
	buf := make([]byte, 256<<10)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return tw.Close()
		}
		if err != nil {
			return fmt.Errorf("read tar: %w", err)
		}
		typ, ok := tarToTreeType[h.Typeflag]
		if !ok {
			continue // PAX globals, GNU extras: nothing to create
		}
		e := &guest.TreeEntry{Name: strings.TrimSuffix(name(h.Name), "/"), Type: typ, Mode: h.Mode & 0o7777, UID: h.Uid, GID: h.Gid,
			MtimeNS: h.ModTime.UnixNano(), Link: h.Linkname, Major: h.Devmajor, Minor: h.Devminor}
		if typ == guest.TreeReg {
			e.Size = h.Size
		}
		if typ == guest.TreeLink {
			e.Link = name(h.Linkname)
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

func name(n string) string {
	return strings.TrimPrefix(strings.TrimPrefix(n, "./"), "/")
}
