package rootfs_test

import (
	"archive/tar"
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"

	"github.com/ferryvm/ferry/internal/rootfs/apply"
	ti "github.com/ferryvm/ferry/internal/rootfs/rootfstest"
	"github.com/ferryvm/ferry/internal/testutil/prereq"
)

// semanticsLayers exercises every OCI layer rule the oracle compares.
func semanticsLayers() [][]ti.E {
	long := strings.Repeat("long-name-", 15) + "end"
	return [][]ti.E{
		{
			ti.Dir("etc/"), ti.File("etc/passwd", "root:x:0:0::/root:/bin/sh\n"), ti.File("etc/old", "old"),
			ti.Dir("usr/"), ti.Dir("usr/bin/"), ti.Dir("usr/lib/"),
			{Name: "usr/bin/app", Body: "app v1", Mode: 0o755},
			ti.Hardlink("usr/bin/app2", "usr/bin/app"),
			{Name: "usr/bin/su", Body: "su", Mode: 0o4755},
			{Name: "usr/bin/sg", Body: "sg", Mode: 0o2711},
			{Name: "usr/bin/ping", Body: "ping", Mode: 0o755, Xattrs: map[string]string{"security.capability": "\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"}},
			{Name: "usr/lib/tagged", Body: "t", Xattrs: map[string]string{"user.ferry": "yes"}},
			ti.File("usr/lib/x", "becomes a dir"),
			ti.Symlink("bin", "usr/bin"),
			ti.Dir("var/"), ti.Symlink("var/run", "/run"), ti.Dir("run/"),
			{Name: "run/fifo", Type: tar.TypeFifo, Mode: 0o620},
			{Name: "dev/", Type: tar.TypeDir, Mode: 0o755},
			{Name: "dev/null", Type: tar.TypeChar, Major: 1, Minor: 3, Mode: 0o666},
			{Name: "dev/loop0", Type: tar.TypeBlock, Major: 7, Minor: 0, Mode: 0o660, GID: 6},
			{Name: "tmp/", Type: tar.TypeDir, Mode: 0o1777},
			{Name: "home/u/", Type: tar.TypeDir, Mode: 0o700, UID: 1000, GID: 1000},
			{Name: "home/u/big-ids", Body: "ids", UID: 70000, GID: 70001},
			{Name: "usr/lib/" + long + "-pax", Body: "pax", Format: tar.FormatPAX},
			{Name: "usr/lib/" + long + "-gnu", Body: "gnu", Format: tar.FormatGNU},
			ti.Dir("var/cache/"), ti.File("var/cache/a", "a"), ti.Dir("var/cache/sub/"), ti.File("var/cache/sub/b", "b"),
			ti.Dir("opt/"), ti.Dir("opt/data/"), ti.File("opt/data/lower", "lower"), ti.Dir("opt/data/sub/"), ti.File("opt/data/sub/deep", "d"),
			ti.Dir("srv/"), ti.File("srv/keep", "k"), ti.File("srv/gone", "g"),
		},
		{
			ti.Whiteout("etc/", "old"), ti.Whiteout("var/", "cache"),
			ti.Dir("opt/data/"), ti.File("opt/data/same-layer", "kept"), ti.Opaque("opt/data/"), ti.File("opt/data/after", "after"),
			ti.Hardlink("usr/bin/app3", "usr/bin/app"),
			ti.Dir("usr/lib/x/"), ti.File("usr/lib/x/inside", "now a dir"),
			{Name: "etc/", Type: tar.TypeDir, Mode: 0o750},
			ti.Whiteout("srv/", "gone"),
			ti.Symlink("srv/dangling", "/nowhere"),
			ti.Symlink("srv/long-link", "/usr/lib/"+strings.Repeat("deep/", 30)+"target"),
			{Name: "srv/big-xattr", Body: "x", Xattrs: map[string]string{"user.big": strings.Repeat("v", 1500)}},
		},
		{
			{Name: "usr/bin/app", Body: "app v2", Mode: 0o755},
			ti.File("usr/lib/x", "a file again"),
			{Name: "home/u/big-ids", Body: "ids2", UID: 70000, GID: 70001, Mode: 0o640},
			ti.Hardlink("run/fifo2", "run/fifo"),
		},
	}
}

func semanticsImage(t testing.TB) v1.Image {
	var tars [][]byte
	for _, l := range semanticsLayers() {
		tars = append(tars, ti.Tar(t, l...))
	}
	return ti.Image(t, tars...)
}

// mountRO loop-mounts an ext4 image read-only for the test's lifetime.
func mountRO(t *testing.T, img string) string {
	t.Helper()
	prereq.Loop(t)
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "ext4", "-o", "ro,loop", img, mnt).CombinedOutput(); err != nil {
		t.Fatalf("loop-mount ext4 %s: %v: %s", img, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", mnt, err, out)
		}
	})
	return mnt
}

// umociUnpack writes img as an OCI layout and unpacks it with umoci.
func umociUnpack(t *testing.T, img v1.Image) string {
	t.Helper()
	prereq.Tool(t, "umoci")
	dir := filepath.Join(t.TempDir(), "layout")
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": "latest"})); err != nil {
		t.Fatal(err)
	}
	bundle := filepath.Join(t.TempDir(), "bundle")
	if out, err := exec.Command("umoci", "unpack", "--image", dir+":latest", bundle).CombinedOutput(); err != nil {
		t.Fatalf("umoci unpack: %v\n%s", err, out)
	}
	return filepath.Join(bundle, "rootfs")
}

// TestBaseMatchesUmoci is the equivalence oracle: the ext4 base (mounted
// read-only), umoci's unpacked tree and ApplyDir's tree agree on path,
// type, mode, owner, size, content, link target and xattrs.
func TestBaseMatchesUmoci(t *testing.T) {
	prereq.Root(t, "loop mount of the base, ownership and devices in the oracle's tree")
	e := newEnv(t)
	img := semanticsImage(t)
	d, _ := img.Digest()
	base, err := e.m.EnsureBase(context.Background(), d, img)
	if err != nil {
		t.Fatal(err)
	}
	fsck(t, base.Path)
	got := ti.ListDir(t, mountRO(t, base.Path))
	delete(got, "lost+found")
	want := ti.ListDir(t, umociUnpack(t, img))
	delete(want, ".")
	delete(got, ".")
	t.Logf("comparing %d paths", len(want))
	if diff := ti.Diff(want, got); len(diff) > 0 {
		t.Errorf("base differs from umoci unpack:\n%s", strings.Join(diff, "\n"))
	}
	dir := t.TempDir()
	if err := apply.ApplyDir(context.Background(), img, dir); err != nil {
		t.Fatal(err)
	}
	applied := ti.ListDir(t, dir)
	delete(applied, ".")
	if diff := ti.Diff(want, applied); len(diff) > 0 {
		t.Errorf("ApplyDir differs from umoci unpack:\n%s", strings.Join(diff, "\n"))
	}
	// Spot checks of the semantics themselves, independent of umoci.
	for p, wantIn := range map[string]bool{
		"opt/data/same-layer": true, "opt/data/after": true, "opt/data/lower": false, "opt/data/sub": false,
		"etc/old": false, "var/cache": false, "srv/keep": true, "srv/gone": false, "usr/lib/x/inside": false,
	} {
		if _, ok := got[p]; ok != wantIn {
			t.Errorf("%s present = %v, want %v", p, ok, wantIn)
		}
	}
	if got["usr/bin/app2"].Sum != got["usr/bin/app3"].Sum || got["usr/bin/app2"].Sum == got["usr/bin/app"].Sum {
		t.Errorf("hardlinks of the replaced file must keep the old content: %+v", got)
	}
}

// TestFlattenSameForEveryCompression flattens the same layers stored
// gzip, zstd and uncompressed.
func TestFlattenSameForEveryCompression(t *testing.T) {
	layers := semanticsLayers()
	var trees []ti.Tree
	for _, comp := range []string{"gzip", "zstd", "none"} {
		var ls []v1.Layer
		for _, l := range layers {
			raw := ti.Tar(t, l...)
			switch comp {
			case "gzip":
				ls = append(ls, ti.Layer(t, raw, false))
			case "zstd":
				ls = append(ls, ti.Layer(t, raw, true))
			default:
				ls = append(ls, ti.Uncompressed(t, raw))
			}
		}
		var buf bytes.Buffer
		if _, err := apply.Flatten(context.Background(), ti.FromLayers(t, ls...), &buf); err != nil {
			t.Fatalf("%s: %v", comp, err)
		}
		trees = append(trees, ti.ListTar(t, &buf))
	}
	for i := 1; i < len(trees); i++ {
		if d := ti.Diff(trees[0], trees[i]); len(d) > 0 {
			t.Fatalf("compression %d differs:\n%s", i, strings.Join(d, "\n"))
		}
	}
}
