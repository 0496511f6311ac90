package treetar

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"testing"
	"time"
)

// A tar survives the trip through a tree stream: names (a leading "./"
// dropped), types, modes, owners, times, link targets, xattrs and content.
func TestRoundTrip(t *testing.T) {
	mt := time.Unix(1700000000, 0)
	in := []*tar.Header{
		{Name: "./d/", Typeflag: tar.TypeDir, Mode: 0o750, Uid: 1, Gid: 2, ModTime: mt},
		{Name: "d/f", Typeflag: tar.TypeReg, Mode: 0o4755, Size: 5, ModTime: mt, PAXRecords: map[string]string{"SCHILY.xattr.user.k": "v"}},
		{Name: "d/l", Typeflag: tar.TypeSymlink, Linkname: "f", Mode: 0o777, ModTime: mt},
		{Name: "d/h", Typeflag: tar.TypeLink, Linkname: "./d/f", ModTime: mt},
	}
	var src bytes.Buffer
	tw := tar.NewWriter(&src)
	for _, h := range in {
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Size > 0 {
			_, _ = tw.Write([]byte("hello"))
		}
	}
	_ = tw.Close()
	var tree, out bytes.Buffer
	if err := FromTar(&src, &tree); err != nil {
		t.Fatal(err)
	}
	tw = tar.NewWriter(&out)
	if err := ToTar(&tree, tw); err != nil {
		t.Fatal(err)
	}
	_ = tw.Close()
	tr := tar.NewReader(&out)
	want := []string{"d/ 5 750 ", "d/f 0 4755 hello", "d/l 2 777 f", "d/h 1 0 d/f"}
	for i, w := range want {
		h, err := tr.Next()
		if err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
		b, _ := io.ReadAll(tr)
		got := fmt.Sprintf("%s %c %o %s%s", h.Name, h.Typeflag, h.Mode, b, h.Linkname)
		if got != w {
			t.Errorf("entry %d = %q, want %q", i, got, w)
		}
		if !h.ModTime.Equal(mt) {
			t.Errorf("%s mtime %v", h.Name, h.ModTime)
		}
		if h.Name == "d/f" && h.PAXRecords["SCHILY.xattr.user.k"] != "v" {
			t.Errorf("xattr lost: %v", h.PAXRecords)
		}
		if h.Name == "d/" && (h.Uid != 1 || h.Gid != 2) {
			t.Errorf("owner lost: %d:%d", h.Uid, h.Gid)
		}
	}
}
