package testimage

import (
	"archive/tar"
	"errors"
	"io"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ferryvm/ferry/internal/testutil/prereq"
)

func flatten(t *testing.T, img v1.Image) map[string]*tar.Header {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	out := map[string]*tar.Header{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out[strings.TrimSuffix(h.Name, "/")] = h
	}
}

func TestLayeredFlattens(t *testing.T) {
	img, err := Layered()
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for n, h := range flatten(t, img) {
		if h.Typeflag == tar.TypeReg {
			files = append(files, n)
		}
	}
	sort.Strings(files)
	if got := strings.Join(files, " "); got != "data/keep data/new dir/fresh etc/hostname" {
		t.Errorf("flattened files: %s", got)
	}
}

func TestBusybox(t *testing.T) {
	img, err := Busybox()
	if errors.Is(err, ErrNoBusybox) {
		prereq.Missing(t, BusyboxPath, prereq.Remedy("busybox"))
	}
	if err != nil {
		t.Fatal(err)
	}
	fs := flatten(t, img)
	for _, p := range []string{"bin/busybox", "bin/sh", "etc/passwd", "etc/group", "tmp"} {
		if fs[p] == nil {
			t.Errorf("missing %s", p)
		}
	}
	if fs["bin/sh"] != nil && fs["bin/sh"].Linkname != "/bin/busybox" {
		t.Errorf("bin/sh → %s", fs["bin/sh"].Linkname)
	}
	if fs["home/ferry"] == nil || fs["home/ferry"].Uid != 1000 {
		t.Error("home/ferry not owned by 1000")
	}
}

func TestDeterministicAndRegistry(t *testing.T) {
	a, _ := Random(7, 2, 1000)
	b, _ := Random(7, 2, 1000)
	da, _ := a.Digest()
	db, _ := b.Digest()
	if da != db {
		t.Fatal("Random is not deterministic")
	}
	host := Registry(t)
	ref := Push(t, host, "det:1", a)
	r, _ := name.ParseReference(ref, name.Insecure)
	desc, err := remote.Get(r)
	if err != nil {
		t.Fatal(err)
	}
	if desc.Digest != da {
		t.Errorf("registry has %s", desc.Digest)
	}
	idx, err := Index("linux/amd64", "linux/arm64/v8")
	if err != nil {
		t.Fatal(err)
	}
	PushIndex(t, host, "multi:1", idx)
}
