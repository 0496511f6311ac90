package buildctx

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"syscall"
	"time"
)

// Stats counts what a context transfer carried.
type Stats struct {
	Files int64 // entries of any kind
	Bytes int64 // regular file content
}

// Send writes dir as a tar stream to w, leaving out what ig excludes. The
// walk is sorted, so the same tree gives the same stream. Regular files,
// directories and symlinks (as links) are sent with their mode, owner and
// mtime; anything else (sockets, devices, fifos) is skipped, as BuildKit
// does. The Dockerfile and ignore file are sent like any other file (COPY
// . may want them unless ignored).
func Send(ctx context.Context, dir string, ig *Ignore, w io.Writer) (Stats, error) {
	tw := tar.NewWriter(w)
	s := sender{ctx: ctx, root: dir, ig: ig, tw: tw}
	fi, err := os.Stat(dir)
	if err != nil {
		return s.st, fmt.Errorf("build context: %w", err)
	}
	if !fi.IsDir() {
		return s.st, fmt.Errorf("build context %s is not a directory", dir)
	}
	if err := s.walk("", match{}); err != nil {
		return s.st, err
	}
	if err := tw.Close(); err != nil {
		return s.st, err
	}
	return s.st, nil
}

type sender struct {
	ctx  context.Context
	root string
	ig   *Ignore
	tw   *tar.Writer
	st   Stats
	buf  []byte
}

func (s *sender) walk(rel string, parent match) error {
	ents, err := os.ReadDir(filepath.Join(s.root, rel))
	if err != nil {
		return fmt.Errorf("build context: %w", err)
	}
	sort.Slice(ents, func(i, j int) bool { return ents[i].Name() < ents[j].Name() })
	for _, e := range ents {
		if err := s.ctx.Err(); err != nil {
			return err
		}
		child := e.Name()
		if rel != "" {
			child = rel + "/" + e.Name()
		}
		skip, m, err := s.ig.excluded(child, parent)
		if err != nil {
			return err
		}
		if skip && (!e.IsDir() || s.ig.canSkipDir()) {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			return fmt.Errorf("build context: %w", err)
		}
		if !skip {
			if err := s.entry(child, fi); err != nil {
				return err
			}
		}
		if fi.IsDir() {
			if err := s.walk(child, m); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *sender) entry(rel string, fi fs.FileInfo) error {
	full := filepath.Join(s.root, rel)
	var link string
	switch {
	case fi.Mode().IsRegular(), fi.IsDir():
	case fi.Mode()&fs.ModeSymlink != 0:
		var err error
		if link, err = os.Readlink(full); err != nil {
			return fmt.Errorf("build context: %w", err)
		}
	default:
		return nil
	}
	hdr, err := tar.FileInfoHeader(fi, link)
	if err != nil {
		return fmt.Errorf("build context %s: %w", rel, err)
	}
	hdr.Name = rel
	if fi.IsDir() {
		hdr.Name += "/"
	}
	hdr.Uname, hdr.Gname = "", ""
	hdr.Format = tar.FormatPAX
	hdr.AccessTime, hdr.ChangeTime = time.Time{}, time.Time{}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		hdr.Uid, hdr.Gid = int(st.Uid), int(st.Gid)
	}
	if err := s.tw.WriteHeader(hdr); err != nil {
		return err
	}
	s.st.Files++
	if !fi.Mode().IsRegular() {
		return nil
	}
	f, err := os.Open(full)
	if err != nil {
		return fmt.Errorf("build context: %w", err)
	}
	defer f.Close()
	if s.buf == nil {
		s.buf = make([]byte, 256<<10)
	}
	n, err := io.CopyBuffer(s.tw, io.LimitReader(f, hdr.Size), s.buf)
	s.st.Bytes += n
	if err != nil {
		return fmt.Errorf("build context %s: %w", rel, err)
	}
	if n != hdr.Size {
		return fmt.Errorf("build context %s: changed size while being sent (%d of %d bytes)", rel, n, hdr.Size)
	}
	return nil
}
