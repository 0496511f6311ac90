package image

import (
	"archive/tar"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	"github.com/ferryvm/ferry/internal/errdefs"
)

// errMalformed is wrapped by every Load failure caused by the archive itself.
var errMalformed = fmt.Errorf("malformed image archive: %w", errdefs.ErrInvalidArgument)

// archive is a random-access view of a spooled tar file.
type archive struct {
	f     *os.File
	files map[string]entry
}

type entry struct {
	off, size int64
}

// indexTar reads every header of the tar in f, recording where each regular
// file's data lives. Symlinks within the archive (old docker save uses them
// for repeated layers) resolve to their targets.
func indexTar(f *os.File) (*archive, error) {
	a := &archive{f: f, files: map[string]entry{}}
	links := map[string]string{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read tar: %w: %w", err, errMalformed)
		}
		n := cleanName(h.Name)
		if n == "" {
			continue
		}
		if _, dup := a.files[n]; dup {
			return nil, fmt.Errorf("tar has %s twice: %w", n, errMalformed)
		}
		switch h.Typeflag {
		case tar.TypeReg:
			off, err := f.Seek(0, io.SeekCurrent)
			if err != nil {
				return nil, err
			}
			if h.Size < 0 {
				return nil, fmt.Errorf("tar entry %s: negative size: %w", n, errMalformed)
			}
			a.files[n] = entry{off: off, size: h.Size}
		case tar.TypeSymlink, tar.TypeLink:
			target := h.Linkname
			if h.Typeflag == tar.TypeSymlink && !strings.HasPrefix(target, "/") {
				target = path.Join(path.Dir(n), target) //nolint:gosec // archive names are map keys here, never paths on disk
			}
			links[n] = cleanName(target)
		}
	}
	for n, target := range links {
		for range 8 { // follow short chains
			if t2, ok := links[target]; ok {
				target = t2
			}
		}
		if e, ok := a.files[target]; ok {
			a.files[n] = e
		}
	}
	// A truncated tar can end without error in the middle of data: every
	// entry must lie inside the file.
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	for n, e := range a.files {
		if e.off+e.size > fi.Size() {
			return nil, fmt.Errorf("tar entry %s is truncated: %w", n, errMalformed)
		}
	}
	return a, nil
}

func cleanName(n string) string {
	n = path.Clean("/" + n)
	return strings.TrimPrefix(n, "/")
}

// has reports whether the archive holds name.
func (a *archive) has(name string) bool { _, ok := a.files[name]; return ok }

// open returns a reader of one file's data.
func (a *archive) open(name string) (*io.SectionReader, int64, error) {
	e, ok := a.files[cleanName(name)]
	if !ok {
		return nil, 0, fmt.Errorf("archive has no %s: %w", name, errMalformed)
	}
	return io.NewSectionReader(a.f, e.off, e.size), e.size, nil
}

// read returns a small file's data, at most limit bytes.
func (a *archive) read(name string, limit int64) ([]byte, error) {
	r, size, err := a.open(name)
	if err != nil {
		return nil, err
	}
	if size > limit {
		return nil, fmt.Errorf("%s is %d bytes, over the %d limit: %w", name, size, limit, errMalformed)
	}
	return io.ReadAll(r)
}
