package initd

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferryvm/ferry/internal/guest"
)

func TestArchiveRoundTrip(t *testing.T) {
	src := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(src, "d", "sub"), 0o750))
	must(os.WriteFile(filepath.Join(src, "d", "a.txt"), []byte("alpha"), 0o640))
	must(os.WriteFile(filepath.Join(src, "d", "sub", "b"), []byte("beta"), 0o755))
	must(os.Symlink("a.txt", filepath.Join(src, "d", "link")))

	var stat bytes.Buffer
	if code, err := archive([]string{guest.ArchiveStat, filepath.Join(src, "d", "a.txt")}, nil, &stat); code != 0 {
		t.Fatalf("stat: %d %v", code, err)
	}
	var ps guest.PathStat
	must(json.Unmarshal(stat.Bytes(), &ps))
	if ps.Name != "a.txt" || ps.Size != 5 || ps.Mode.Perm() != 0o640 {
		t.Fatalf("stat = %+v", ps)
	}
	var tb bytes.Buffer
	if code, err := archive([]string{guest.ArchiveGet, filepath.Join(src, "d")}, nil, &tb); code != 0 {
		t.Fatalf("get: %d %v", code, err)
	}
	var names []string
	tr := guest.NewTreeReader(bytes.NewReader(tb.Bytes()))
	for e, err := tr.Next(); err == nil; e, err = tr.Next() {
		names = append(names, e.Name)
		_, _ = io.Copy(io.Discard, tr)
	}
	if got := strings.Join(names, " "); got != "d d/a.txt d/link d/sub d/sub/b" {
		t.Fatalf("archive entries %q", got)
	}
	dst := t.TempDir()
	if code, err := archive([]string{guest.ArchivePut, dst}, bytes.NewReader(tb.Bytes()), nil); code != 0 {
		t.Fatalf("put: %d %v", code, err)
	}
	if b, _ := os.ReadFile(filepath.Join(dst, "d", "sub", "b")); string(b) != "beta" {
		t.Fatalf("extracted b = %q", b)
	}
	if l, _ := os.Readlink(filepath.Join(dst, "d", "link")); l != "a.txt" {
		t.Fatalf("extracted link -> %q", l)
	}
	if fi, _ := os.Stat(filepath.Join(dst, "d", "sub", "b")); fi.Mode().Perm() != 0o755 {
		t.Fatalf("extracted mode %v", fi.Mode())
	}
	if code, _ := archive([]string{guest.ArchiveGet, filepath.Join(src, "nope")}, nil, &tb); code != guest.ArchiveNotFound {
		t.Fatalf("get of a missing path: code %d, want %d", code, guest.ArchiveNotFound)
	}
	if code, _ := archive([]string{guest.ArchivePut, filepath.Join(src, "d", "a.txt")}, nil, nil); code != guest.ArchiveNotDir {
		t.Fatalf("put into a file: code %d, want %d", code, guest.ArchiveNotDir)
	}
}

func TestArchivePutStaysInsideAndNeverFollowsLinks(t *testing.T) {
	dir, outside := t.TempDir(), t.TempDir()
	if err := os.Symlink(outside, filepath.Join(dir, "escape")); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"../../evil", "escape/evil"} {
		var b bytes.Buffer
		tw := guest.NewTreeWriter(&b)
		_ = tw.WriteEntry(&guest.TreeEntry{Name: name, Mode: 0o644, Size: 1, Type: guest.TreeReg})
		_, _ = tw.Write([]byte("x"))
		_ = tw.Close()
		_, _ = archive([]string{guest.ArchivePut, dir}, &b, nil)
		if ents, _ := os.ReadDir(outside); len(ents) != 0 {
			t.Fatalf("%s wrote outside the directory: %v", name, ents)
		}
	}
}
