package initd

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ferryvm/ferry/internal/guest"
	"github.com/ferryvm/ferry/internal/testutil/prereq"
)

// entries lists a tree stream as "name type mode uid:gid [link|content]".
func entries(t *testing.T, b []byte) []string {
	t.Helper()
	tr := guest.NewTreeReader(bytes.NewReader(b))
	var out []string
	for {
		e, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		c, _ := io.ReadAll(tr)
		s := fmt.Sprintf("%s %c %o %d:%d", e.Name, e.Type, e.Mode, e.UID, e.GID)
		if e.Link != "" {
			s += " -> " + e.Link
		}
		if len(c) > 0 {
			s += " " + string(c)
		}
		for k, v := range e.Xattrs {
			s += " " + k + "=" + v
		}
		out = append(out, s)
	}
	return out
}

// TestOverlayUpperToOCI: changes made through a real overlayfs mount
// (rm of a lower file, rm -rf + mkdir of a lower dir, a new file, a
// hardlink) come out of WriteTree as OCI whiteouts and an opaque marker,
// and ReadTree turns them back into an upper that overlayfs reads the same.
func TestOverlayUpperToOCI(t *testing.T) {
	prereq.Root(t, "mounts overlayfs and makes whiteout devices")
	dir := t.TempDir()
	lower, upper, work, merged := filepath.Join(dir, "lower"), filepath.Join(dir, "upper"), filepath.Join(dir, "work"), filepath.Join(dir, "merged")
	for _, d := range []string{lower + "/etc", lower + "/var/cache/old", upper, work, merged} {
		os.MkdirAll(d, 0o755)
	}
	os.WriteFile(lower+"/etc/secret", []byte("s"), 0o600)
	os.WriteFile(lower+"/etc/keep", []byte("k"), 0o644)
	os.WriteFile(lower+"/var/cache/old/x", []byte("x"), 0o644)
	mount := func(up string) {
		opts := "lowerdir=" + lower + ",upperdir=" + up + ",workdir=" + work + ",index=off,redirect_dir=off,metacopy=off"
		if err := unix.Mount("overlay", merged, "overlay", 0, opts); err != nil {
			t.Fatalf("mount overlay: %v", err)
		}
	}
	mount(upper)
	os.Remove(merged + "/etc/secret")
	os.RemoveAll(merged + "/var/cache")
	os.MkdirAll(merged+"/var/cache", 0o755)
	os.WriteFile(merged+"/var/cache/new", []byte("n"), 0o644)
	os.WriteFile(merged+"/bin-a", []byte("bin"), 0o755)
	os.Link(merged+"/bin-a", merged+"/bin-b")
	unix.Setxattr(merged+"/bin-a", "user.test", []byte("v"), 0)
	unix.Unmount(merged, 0)

	var buf bytes.Buffer
	if err := WriteTree(upper, &buf, true); err != nil {
		t.Fatal(err)
	}
	got := entries(t, buf.Bytes())
	want := []string{
		"bin-a 0 755 0:0 bin user.test=v",
		"bin-b 1 755 0:0 -> bin-a user.test=v",
		"etc 5 755 0:0",
		"etc/.wh.secret 0 0 0:0",
		"var 5 755 0:0",
		"var/cache 5 755 0:0",
		"var/cache/.wh..wh..opq 0 0 0:0",
		"var/cache/new 0 644 0:0 n",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("diff:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// Back into an upper: overlayfs must show the same tree.
	upper2 := filepath.Join(dir, "upper2")
	if err := ReadTree(bytes.NewReader(buf.Bytes()), upper2, true); err != nil {
		t.Fatal(err)
	}
	os.RemoveAll(work)
	os.MkdirAll(work, 0o755)
	mount(upper2)
	defer unix.Unmount(merged, 0)
	var seen []string
	filepath.Walk(merged, func(p string, fi os.FileInfo, err error) error {
		if err == nil && p != merged {
			seen = append(seen, strings.TrimPrefix(p, merged+"/"))
		}
		return nil
	})
	sort.Strings(seen)
	if s := strings.Join(seen, " "); s != "bin-a bin-b etc etc/keep var var/cache var/cache/new" {
		t.Errorf("overlay over the rebuilt upper shows %s", s)
	}
	var a, b unix.Stat_t
	unix.Stat(merged+"/bin-a", &a)
	unix.Stat(merged+"/bin-b", &b)
	if a.Ino != b.Ino {
		t.Error("hardlink not kept")
	}
}

func TestReadTreeRefusesEscapes(t *testing.T) {
	for name, es := range map[string][]guest.TreeEntry{
		"dotdot":          {{Name: "../x", Type: guest.TreeReg}},
		"through symlink": {{Name: "l", Type: guest.TreeSymlink, Link: "/"}, {Name: "l/x", Type: guest.TreeReg}},
		"hardlink out":    {{Name: "h", Type: guest.TreeLink, Link: "../../etc/passwd"}},
	} {
		t.Run(name, func(t *testing.T) {
			var buf bytes.Buffer
			tw := guest.NewTreeWriter(&buf)
			for i := range es {
				es[i].Mode = 0o644
				tw.WriteEntry(&es[i])
			}
			tw.Close()
			if err := ReadTree(&buf, t.TempDir(), false); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

func TestInRoot(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(root+"/usr/bin", 0o755)
	os.Symlink("usr/bin", root+"/bin")
	os.Symlink("/etc", root+"/abs")
	os.Symlink("../../..", root+"/usr/up")
	for p, want := range map[string]string{"/bin/sh": "/usr/bin/sh", "/abs/passwd": "/etc/passwd", "/usr/up/x": "/x", "/missing/a/b": "/missing/a/b"} {
		got, err := inRoot(root, p, true)
		if err != nil || got != root+want {
			t.Errorf("inRoot(%s) = %s, %v; want %s", p, got, err, root+want)
		}
	}
	if got, _ := inRoot(root, "/bin", false); got != root+"/bin" {
		t.Errorf("not following the last component: %s", got)
	}
	hp, made, err := mkdirInRoot(root, "/abs/ssl/certs", 0o755, 0, 0)
	if err != nil || hp != root+"/etc/ssl/certs" || len(made) != 3 {
		t.Errorf("mkdirInRoot = %s %v %v", hp, made, err)
	}
}

func TestOverlayOptions(t *testing.T) {
	s := &guest.BuildStep{Upper: "l3", Lowers: []string{"l2", "l1"}}
	if got := overlayOptions(s, "/run/ferry-build/base"); got != "lowerdir=l/l2:l/l1:/run/ferry-build/base,upperdir=l/l3,workdir=w/l3" {
		t.Errorf("options = %s", got)
	}
}
