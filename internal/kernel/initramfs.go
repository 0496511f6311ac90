package kernel

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/ferryvm/ferry/internal/errdefs"
)

// Shared describes the shared initramfs of every machine booted with one
// kernel and one ferry-init.
type Shared struct {
	Init string // host path of the ferry-init binary, becomes /init

	// ModulesDir and Modules are set for a modular kernel: the host's
	// lib/modules/<version> directory and the files (relative to it, in load
	// order, from ModuleClosure) to carry and list in ModulesOrderPath.
	ModulesDir string
	Modules    []string

	// Files are extra entries appended as they are (test inits' tools,
	// debugging aids); their parent directories must come first.
	Files []Entry
}

// Entry is one file of an archive: its header and where its bytes come from
// (Source, a host file, or Data).
type Entry struct {
	Header
	Source string `json:",omitempty"`
	Data   []byte `json:"-"`
}

func (e Entry) String() string {
	from := ""
	switch {
	case e.Source != "":
		from = " < " + e.Source
	case e.Linkname != "":
		from = " -> " + e.Linkname
	case e.Mode.IsRegular():
		from = fmt.Sprintf(" (%d bytes)", len(e.Data))
	}
	return fmt.Sprintf("%v %d:%d /%s%s", e.Mode, e.UID, e.GID, e.Name, from)
}

// Entries returns the shared archive's contents, in archive order, without
// reading any file.
func (s Shared) Entries() []Entry {
	dir := func(n string) Entry { return Entry{Header: Header{Name: n, Mode: fs.ModeDir | 0o755}} }
	es := []Entry{
		dir("dev"),
		{Header: Header{Name: "dev/console", Mode: fs.ModeDevice | fs.ModeCharDevice | 0o600, Major: 5, Minor: 1}},
		dir("proc"), dir("sys"), dir("run"), dir("tmp"),
		{Header: Header{Name: "init", Mode: 0o755}, Source: s.Init},
	}
	if s.ModulesDir == "" || len(s.Modules) == 0 {
		return append(es, s.Files...)
	}
	ver := filepath.Base(s.ModulesDir)
	root := path.Join("lib/modules", ver)
	seen := map[string]bool{}
	mkdirs := func(p string) {
		var parts []string
		for d := path.Dir(p); d != "." && !seen[d]; d = path.Dir(d) {
			seen[d] = true
			parts = append(parts, d)
		}
		for i := len(parts) - 1; i >= 0; i-- {
			es = append(es, dir(parts[i]))
		}
	}
	var order strings.Builder
	for _, m := range s.Modules {
		name := path.Join(root, m)
		mkdirs(name)
		es = append(es, Entry{Header: Header{Name: name, Mode: 0o644}, Source: filepath.Join(s.ModulesDir, m)})
		order.WriteString("/" + name + "\n")
	}
	es = append(es, Entry{Header: Header{Name: strings.TrimPrefix(ModulesOrderPath, "/"), Mode: 0o644}, Data: []byte(order.String())})
	return append(es, s.Files...)
}

// BuildShared writes the shared archive into dir as shared-<hash>.cpio,
// where hash covers every entry's header and bytes, and returns its path.
// An archive already there under that name is reused (the inputs are hashed,
// not rebuilt). Writes go to a temporary file, fsync, rename.
func BuildShared(ctx context.Context, dir string, s Shared) (string, error) {
	if s.Init == "" {
		return "", fmt.Errorf("shared initramfs: no init binary: %w", errdefs.ErrInvalidArgument)
	}
	es := s.Entries()
	sum, err := hashEntries(ctx, es)
	if err != nil {
		return "", fmt.Errorf("shared initramfs: %w", err)
	}
	dst := filepath.Join(dir, "shared-"+sum[:32]+".cpio")
	if _, err := os.Stat(dst); err == nil {
		return dst, nil
	}
	// The digest goes first, so the archive's first bytes identify it
	// (WriteInitrd relies on that to reuse a machine's copy).
	es = append([]Entry{{Header: Header{Name: sharedIDName, Mode: 0o444}, Data: []byte(sum + "\n")}}, es...)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return "", fmt.Errorf("shared initramfs: %w", err)
	}
	err = writeAtomic(dst, 0o644, true, func(f *os.File) error { return writeArchive(ctx, f, es) })
	if err != nil {
		return "", fmt.Errorf("shared initramfs: %w", err)
	}
	return dst, nil
}

// sharedIDName is the first entry of a shared archive: its input digest.
const sharedIDName = ".ferry-shared"

// hashEntries digests entries' headers and contents.
func hashEntries(ctx context.Context, es []Entry) (string, error) {
	h := sha256.New()
	for _, e := range es {
		if err := ctx.Err(); err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s\x00%o\x00%d:%d\x00%s\x00%d:%d\x00", e.Name, uint32(e.Mode), e.UID, e.GID, e.Linkname, e.Major, e.Minor)
		switch {
		case e.Source != "":
			f, err := os.Open(e.Source)
			if err != nil {
				return "", err
			}
			n, err := io.Copy(h, f)
			f.Close()
			if err != nil {
				return "", fmt.Errorf("read %s: %w", e.Source, err)
			}
			fmt.Fprintf(h, "\x00%d\x00", n)
		default:
			h.Write(e.Data)
			fmt.Fprintf(h, "\x00%d\x00", len(e.Data))
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// writeArchive writes es as one cpio archive to w.
func writeArchive(ctx context.Context, w io.Writer, es []Entry) error {
	cw := NewWriter(w)
	for _, e := range es {
		if err := ctx.Err(); err != nil {
			return err
		}
		h := e.Header
		if e.Source == "" {
			if h.Mode.IsRegular() {
				h.Size = int64(len(e.Data))
			}
			if err := cw.WriteHeader(&h); err != nil {
				return err
			}
			if _, err := cw.Write(e.Data); err != nil {
				return err
			}
			continue
		}
		f, err := os.Open(e.Source)
		if err != nil {
			return err
		}
		fi, err := f.Stat()
		if err == nil {
			h.Size = fi.Size()
			err = cw.WriteHeader(&h)
		}
		if err == nil {
			_, err = cw.ReadFrom(f)
		}
		f.Close()
		if err != nil {
			return fmt.Errorf("add %s: %w", e.Source, err)
		}
	}
	return cw.Close()
}

// PerMachine returns a cpio archive holding files (absolute guest path →
// bytes; mode 0600, owned by root, since a run config can carry secrets),
// with their parent directories, in sorted order, padded to 512 bytes.
func PerMachine(files map[string][]byte) ([]byte, error) {
	names := make([]string, 0, len(files))
	for p := range files {
		if !path.IsAbs(p) || path.Clean(p) != p || p == "/" {
			return nil, fmt.Errorf("per-machine initramfs: path %q: want a clean absolute file path: %w", p, errdefs.ErrInvalidArgument)
		}
		names = append(names, p)
	}
	sort.Strings(names)
	var es []Entry
	seen := map[string]bool{}
	for _, p := range names {
		var parents []string
		for d := path.Dir(p); d != "/" && !seen[d]; d = path.Dir(d) {
			seen[d] = true
			parents = append(parents, d)
		}
		for i := len(parents) - 1; i >= 0; i-- {
			es = append(es, Entry{Header: Header{Name: parents[i][1:], Mode: fs.ModeDir | 0o755}})
		}
		es = append(es, Entry{Header: Header{Name: p[1:], Mode: 0o600}, Data: files[p]})
	}
	var buf bytes.Buffer
	if err := writeArchive(context.Background(), &buf, es); err != nil {
		return nil, fmt.Errorf("per-machine initramfs: %w", err)
	}
	return buf.Bytes(), nil
}

// WriteInitrd writes the machine's initrd to dst: the shared archive, then
// the per-machine archive of files. When dst already starts with the same
// shared archive (a restart), only its per-machine tail is rewritten in
// place: a few KB. Otherwise the shared archive is copied with
// copy_file_range (a reflink on XFS/btrfs) into a temporary file that
// replaces dst. dst (mode 0600: run configs carry secrets) is not fsynced; it
// is rebuilt from the run config on every start, and a VMM reads it whole
// when it starts, so rewriting it later does not affect a running machine.
func WriteInitrd(ctx context.Context, dst, shared string, files map[string][]byte) error {
	pm, err := PerMachine(files)
	if err != nil {
		return err
	}
	src, err := os.Open(shared)
	if err != nil {
		return fmt.Errorf("initrd %s: %w", dst, err)
	}
	defer src.Close()
	fi, err := src.Stat()
	if err != nil {
		return fmt.Errorf("initrd %s: %w", dst, err)
	}
	n := fi.Size()
	if n%4 != 0 {
		return fmt.Errorf("initrd %s: shared archive %s is %d bytes, not 4-byte aligned: %w", dst, shared, n, errdefs.ErrInvalidArgument)
	}
	if ok, err := rewriteTail(dst, src, n, pm); ok || err != nil {
		if err != nil {
			return fmt.Errorf("initrd %s: %w", dst, err)
		}
		return nil
	}
	err = writeAtomic(dst, 0o600, false, func(f *os.File) error {
		if _, err := io.Copy(f, src); err != nil { // *os.File to *os.File: copy_file_range
			return err
		}
		_, err = f.Write(pm)
		return err
	})
	if err != nil {
		return fmt.Errorf("initrd %s: %w", dst, err)
	}
	return nil
}

// rewriteTail replaces the per-machine part of an existing initrd whose first
// block equals the shared archive's (which starts with its digest). It
// reports false when dst is absent or holds another shared archive.
func rewriteTail(dst string, shared *os.File, n int64, pm []byte) (bool, error) {
	f, err := os.OpenFile(dst, os.O_RDWR, 0)
	if err != nil {
		return false, nil
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || fi.Size() < n {
		return false, nil
	}
	head := func(r io.ReaderAt) []byte {
		b := make([]byte, 512)
		k, _ := r.ReadAt(b, 0)
		return b[:k]
	}
	if h := head(shared); len(h) < 512 || !bytes.Equal(h, head(f)) || !bytes.HasPrefix(h[110:], []byte(sharedIDName+"\x00")) {
		return false, nil
	}
	if err := f.Truncate(n); err != nil {
		return true, err
	}
	if _, err := f.WriteAt(pm, n); err != nil {
		return true, err
	}
	return true, f.Close()
}

// writeAtomic writes dst through a temporary file in its directory, fsyncs
// it when sync is set, and renames it into place.
func writeAtomic(dst string, perm os.FileMode, sync bool, fill func(*os.File) error) error {
	f, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	if err := fill(f); err != nil {
		return err
	}
	if err := f.Chmod(perm); err != nil {
		return err
	}
	if sync {
		if err := f.Sync(); err != nil {
			return err
		}
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, dst); err != nil {
		return err
	}
	ok = true
	return nil
}

// PruneShared removes the shared archives in dir other than keep (paths
// BuildShared returned): old ferry-init or kernel versions. Machines' own
// initrds are copies, so pruning never breaks a machine.
func PruneShared(dir string, keep ...string) error {
	old, err := filepath.Glob(filepath.Join(dir, "shared-*.cpio"))
	if err != nil {
		return err
	}
	for _, p := range old {
		if slices.Contains(keep, p) {
			continue
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("prune %s: %w", p, err)
		}
	}
	return nil
}
