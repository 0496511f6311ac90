package layer

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/bzip2"
	"fmt"
	"io"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"

	"github.com/ferryvm/ferry/internal/errdefs"
)

// decompress returns r's uncompressed stream (gzip, bzip2, xz, zstd or
// none), sniffed from its first bytes.
func decompress(r io.Reader) (io.Reader, func(), error) {
	br := bufio.NewReaderSize(r, 64<<10)
	magic, _ := br.Peek(6)
	switch {
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, nil, err
		}
		return zr, func() { _ = zr.Close() }, nil
	case bytes.HasPrefix(magic, []byte("BZh")):
		return bzip2.NewReader(br), func() {}, nil
	case bytes.HasPrefix(magic, []byte{0xfd, '7', 'z', 'X', 'Z', 0}):
		xr, err := xz.NewReader(br)
		if err != nil {
			return nil, nil, err
		}
		return xr, func() {}, nil
	case bytes.HasPrefix(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		zr, err := zstd.NewReader(br)
		if err != nil {
			return nil, nil, err
		}
		return zr, zr.Close, nil
	}
	return br, func() {}, nil
}

// isArchive reports whether the file p is a (possibly compressed) tar,
// which ADD extracts: its first header must parse.
func isArchive(src Source, p string) bool {
	f, err := src.Open(p)
	if err != nil {
		return false
	}
	defer f.Close()
	r, done, err := decompress(f)
	if err != nil {
		return false
	}
	defer done()
	var hdr [512]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return false
	}
	_, err = tar.NewReader(bytes.NewReader(hdr[:])).Next()
	return err == nil || err == io.ErrUnexpectedEOF
}

// extract writes the entries of archive sp under dest.
func (c *copier) extract(sp, dest string) error {
	f, err := c.src.Open(sp)
	if err != nil {
		return err
	}
	defer f.Close()
	r, done, err := decompress(f)
	if err != nil {
		return fmt.Errorf("ADD %s: %w", sp, err)
	}
	defer done()
	rdest, _, err := c.lower.Resolve(dest)
	if err != nil {
		return err
	}
	if err := c.mkdirs(rdest); err != nil {
		return err
	}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("ADD %s: %w: %w", sp, err, errdefs.ErrInvalidArgument)
		}
		name, err := archiveName(h.Name)
		if err != nil {
			return fmt.Errorf("ADD %s: %w", sp, err)
		}
		if name == "" {
			continue
		}
		p, err := c.place(join(dest, name))
		if err != nil {
			return err
		}
		c.placed[name] = p
		out := *h
		out.Name = p
		if h.Typeflag == tar.TypeDir {
			out.Name += "/"
			if c.made[p] {
				continue
			}
			c.made[p] = true
		}
		if h.Typeflag == tar.TypeLink {
			ln, err := archiveName(h.Linkname)
			if err != nil || c.placed[ln] == "" {
				return fmt.Errorf("ADD %s: hardlink %s to %q, which is not earlier in the archive: %w", sp, h.Name, h.Linkname, errdefs.ErrInvalidArgument)
			}
			out.Linkname = c.placed[ln]
		}
		if c.spec.Owner != nil {
			out.Uid, out.Gid = c.spec.Owner.UID, c.spec.Owner.GID
		}
		if c.spec.Mode != nil && h.Typeflag != tar.TypeSymlink {
			out.Mode = *c.spec.Mode
		}
		if err := c.w.WriteHeader(&out); err != nil {
			return err
		}
		if h.Typeflag == tar.TypeReg || h.Typeflag == tar.TypeRegA { //nolint:staticcheck // old writers still emit it
			if _, err := io.CopyBuffer(c.w, tr, c.buf); err != nil {
				return err
			}
		}
	}
}

// archiveName cleans an archive entry name, refusing ones that climb out.
func archiveName(n string) (string, error) {
	for _, c := range split(trimSlashes(n)) {
		if c == ".." {
			return "", fmt.Errorf("entry %q leaves the destination: %w", n, errdefs.ErrInvalidArgument)
		}
	}
	return clean(n), nil
}

func trimSlashes(s string) string {
	for len(s) > 0 && s[0] == '/' {
		s = s[1:]
	}
	return s
}
