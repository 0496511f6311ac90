package initd

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"

	"github.com/ferryvm/ferry/internal/guest"
)

// ArchiveMain is ferry-init re-executed as the archive helper
// (guest.ArchiveHelperArg): stat, get or put one path of the machine's root
// for docker cp. It returns the exit code.
func ArchiveMain(args []string) int {
	code, err := archive(args, os.Stdin, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	return code
}

// Archive does what the archive helper does, for a caller whose root
// directory is the machine's: the host's view of a stopped machine's
// disks (rootfs View). args are the helper's (op, path); the exit code is
// the helper's.
func Archive(args []string, in io.Reader, out io.Writer) (int, error) { return archive(args, in, out) }

func archive(args []string, in io.Reader, out io.Writer) (int, error) {
	if len(args) != 2 || !path.IsAbs(args[1]) {
		return 1, fmt.Errorf("usage: %s stat|get|put ABSOLUTE-PATH", guest.ArchiveHelperArg)
	}
	op, p := args[0], path.Clean(args[1])
	if op == guest.ArchivePut {
		// As dockerd: the destination's symlinks are followed, the last
		// one too, so that an archive can go to a link to a directory.
		if real, err := filepath.EvalSymlinks(p); err == nil {
			p = real
		}
	}
	fi, err := os.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return guest.ArchiveNotFound, fmt.Errorf("no such file or directory: %s", p)
	}
	if err != nil {
		return 1, err
	}
	switch op {
	case guest.ArchiveStat:
		return result(json.NewEncoder(out).Encode(pathStat(p, fi)))
	case guest.ArchiveGet:
		return result(writeArchive(p, fi, out))
	case guest.ArchivePut:
		if !fi.IsDir() {
			return guest.ArchiveNotDir, fmt.Errorf("not a directory: %s", p)
		}
		return result(extract(p, in))
	}
	return 1, fmt.Errorf("%s: unknown op %q", guest.ArchiveHelperArg, op)
}

func result(err error) (int, error) {
	if err != nil {
		return 1, err
	}
	return 0, nil
}

func pathStat(p string, fi fs.FileInfo) guest.PathStat {
	st := guest.PathStat{Name: fi.Name(), Size: fi.Size(), Mode: fi.Mode(), Mtime: fi.ModTime()}
	if fi.Mode()&fs.ModeSymlink != 0 {
		// As dockerd: the link resolved to the end (docker cp -L copies
		// that), or as written when it dangles.
		if real, err := filepath.EvalSymlinks(p); err == nil {
			st.LinkTarget = real
		} else {
			st.LinkTarget, _ = os.Readlink(p)
		}
	}
	return st
}

// writeArchive writes p (a file, link or tree) as a tree stream whose
// names start at p's base name (the host makes it Docker's tar).
func writeArchive(p string, fi fs.FileInfo, out io.Writer) error {
	base := filepath.Base(p)
	if p == "/" {
		base = "."
	}
	tw := newTreeEntries(out, false)
	if err := tw.add(p, base); err != nil {
		return err
	}
	if fi.IsDir() {
		err := walkSorted(p, "", func(rel string, _ fs.FileInfo) error {
			return tw.add(filepath.Join(p, rel), path.Join(base, rel))
		})
		if err != nil {
			return err
		}
	}
	return tw.Close()
}

// extract unpacks a tree stream under dir (ReadTree refuses names that
// climb out and parents that are not directories).
func extract(dir string, in io.Reader) error { return ReadTree(in, dir, false) }
