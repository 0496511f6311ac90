package apply

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
)

// writeTree emits fs as a tar stream in depth-first name order and
// returns the number of entries and file bytes written.
func writeTree(ctx context.Context, fs *memfs, w io.Writer) (int, int64, error) {
	tw := tar.NewWriter(w)
	tw2 := &treeWriter{ctx: ctx, tw: tw, first: map[*inode]string{}}
	if err := tw2.dir(fs.root, ""); err != nil {
		return tw2.n, tw2.bytes, err
	}
	if err := tw.Close(); err != nil {
		return tw2.n, tw2.bytes, fmt.Errorf("flatten: %w", err)
	}
	return tw2.n, tw2.bytes, nil
}

type treeWriter struct {
	ctx   context.Context
	tw    *tar.Writer
	first map[*inode]string // first name written for each hard-linked inode
	n     int
	bytes int64
}

func (t *treeWriter) dir(d *node, name string) error {
	hdrName := name + "/"
	if name == "" {
		hdrName = "./"
	}
	if err := t.write(d.ino, hdrName); err != nil {
		return err
	}
	for _, c := range slices.Sorted(maps.Keys(d.children)) {
		child := d.children[c]
		cname := c
		if name != "" {
			cname = name + "/" + c
		}
		if child.ino.typ == tar.TypeDir {
			if err := t.dir(child, cname); err != nil {
				return err
			}
			continue
		}
		if err := t.write(child.ino, cname); err != nil {
			return err
		}
	}
	return nil
}

func (t *treeWriter) write(ino *inode, name string) error {
	if err := t.ctx.Err(); err != nil {
		return err
	}
	t.n++
	m := ino.meta
	hdr := &tar.Header{
		Name:     name,
		Typeflag: ino.typ,
		Mode:     int64(m.mode),
		Uid:      m.uid,
		Gid:      m.gid,
		ModTime:  m.mtime,
		Devmajor: int64(m.major),
		Devminor: int64(m.minor),
	}
	if m.mtime.Nanosecond() != 0 || len(m.xattrs) > 0 || len(m.spooled) > 0 {
		hdr.Format = tar.FormatPAX
	}
	if len(m.xattrs) > 0 || len(m.spooled) > 0 {
		hdr.PAXRecords = make(map[string]string, len(m.xattrs)+len(m.spooled))
		for k, v := range m.xattrs {
			hdr.PAXRecords["SCHILY.xattr."+k] = string(v)
		}
		for k, sec := range m.spooled {
			v := make([]byte, sec.n)
			if _, err := sec.s.ReadAt(v, sec.off); err != nil {
				return fmt.Errorf("flatten %s: read xattr %s: %w", name, k, err)
			}
			hdr.PAXRecords["SCHILY.xattr."+k] = string(v)
		}
	}
	if ino.typ != tar.TypeDir {
		if prev, ok := t.first[ino]; ok {
			hdr.Typeflag, hdr.Linkname = tar.TypeLink, prev
			return t.header(hdr)
		}
		t.first[ino] = name
	}
	switch ino.typ {
	case tar.TypeSymlink:
		hdr.Linkname = ino.target
	case tar.TypeReg:
		hdr.Size = ino.size
	}
	if err := t.header(hdr); err != nil {
		return err
	}
	if ino.typ == tar.TypeReg && ino.size > 0 {
		n, err := ino.data.WriteTo(t.tw)
		if err != nil {
			return fmt.Errorf("flatten %s: %w", name, err)
		}
		t.bytes += n
	}
	return nil
}

func (t *treeWriter) header(hdr *tar.Header) error {
	if err := t.tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("flatten %s: %w", hdr.Name, err)
	}
	return nil
}
