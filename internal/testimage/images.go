package testimage

import (
	"archive/tar"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// BusyboxPath is where Debian's busybox-static installs the binary.
const BusyboxPath = "/bin/busybox"

// ErrNoBusybox is returned by Busybox when BusyboxPath is missing.
var ErrNoBusybox = fmt.Errorf("%s missing: install Debian's busybox-static (scripts/deps.sh)", BusyboxPath)

// Busybox builds a one-layer busybox image for platform linux/amd64: /bin/busybox,
// a symlink per applet, /etc/passwd and /etc/group with root and
// ferry (1000:1000), /tmp (1777), /root, /home/ferry; Cmd ["sh"].
func Busybox() (v1.Image, error) {
	bin, err := os.ReadFile(BusyboxPath)
	if err != nil {
		return nil, ErrNoBusybox
	}
	out, err := exec.Command(BusyboxPath, "--list-full").Output()
	if err != nil {
		return nil, fmt.Errorf("busybox --list-full: %w", err)
	}
	files := []File{
		{Path: "bin", Type: tar.TypeDir}, {Path: "sbin", Type: tar.TypeDir},
		{Path: "usr", Type: tar.TypeDir}, {Path: "usr/bin", Type: tar.TypeDir}, {Path: "usr/sbin", Type: tar.TypeDir},
		{Path: "etc", Type: tar.TypeDir}, {Path: "tmp", Type: tar.TypeDir, Mode: 0o1777},
		{Path: "root", Type: tar.TypeDir, Mode: 0o700}, {Path: "home", Type: tar.TypeDir},
		{Path: "home/ferry", Type: tar.TypeDir, UID: 1000, GID: 1000},
		{Path: "proc", Type: tar.TypeDir}, {Path: "sys", Type: tar.TypeDir}, {Path: "dev", Type: tar.TypeDir},
		{Path: "bin/busybox", Mode: 0o755, Data: bin},
		{Path: "etc/passwd", Data: []byte("root:x:0:0:root:/root:/bin/sh\nferry:x:1000:1000:ferry:/home/ferry:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")},
		{Path: "etc/group", Data: []byte("root:x:0:\nferry:x:1000:\nnogroup:x:65534:\n")},
	}
	for _, l := range strings.Fields(string(out)) {
		l = strings.TrimPrefix(l, "/")
		if l == "bin/busybox" || !strings.Contains(l, "/") {
			continue
		}
		files = append(files, File{Path: l, Type: tar.TypeSymlink, Linkname: "/bin/busybox"})
	}
	layer, err := Layer(files, Gzip)
	if err != nil {
		return nil, err
	}
	return Image(v1.Config{
		Cmd: []string{"sh"},
		Env: []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
	}, v1.Platform{}, layer)
}

// Layered builds a three-layer image whose upper layers delete a file
// (whiteout) and replace a directory (opaque):
//
//	layer 1: etc/hostname, data/keep, data/gone, dir/old1, dir/old2
//	layer 2: data/.wh.gone, data/new
//	layer 3: dir/.wh..wh..opq, dir/fresh
//
// Flattened: etc/hostname, data/keep, data/new, dir/fresh.
func Layered() (v1.Image, error) {
	l1, err := Layer([]File{
		{Path: "etc", Type: tar.TypeDir}, {Path: "etc/hostname", Data: []byte("layered\n")},
		{Path: "data", Type: tar.TypeDir}, {Path: "data/keep", Data: []byte("keep\n")}, {Path: "data/gone", Data: []byte("gone\n")},
		{Path: "dir", Type: tar.TypeDir}, {Path: "dir/old1", Data: []byte("1")}, {Path: "dir/old2", Data: []byte("2")},
	}, Gzip)
	if err != nil {
		return nil, err
	}
	l2, err := Layer([]File{{Path: "data", Type: tar.TypeDir}, {Path: "data/.wh.gone"}, {Path: "data/new", Data: []byte("new\n")}}, Zstd)
	if err != nil {
		return nil, err
	}
	l3, err := Layer([]File{{Path: "dir", Type: tar.TypeDir}, {Path: "dir/.wh..wh..opq"}, {Path: "dir/fresh", Data: []byte("fresh\n")}}, Uncompressed)
	if err != nil {
		return nil, err
	}
	return Image(v1.Config{Cmd: []string{"/bin/sh"}}, v1.Platform{}, l1, l2, l3)
}

// Random builds an image of n layers, each one file of size bytes of
// pseudo-random content derived from seed.
func Random(seed uint64, n int, size int) (v1.Image, error) {
	var layers []v1.Layer
	for i := range n {
		data := randomBytes(seed*1000+uint64(i), size, 0)
		l, err := Layer([]File{{Path: fmt.Sprintf("layer%d/data", i), Data: data}}, Gzip)
		if err != nil {
			return nil, err
		}
		layers = append(layers, l)
	}
	return Image(v1.Config{Cmd: []string{"/bin/true"}, Labels: map[string]string{"seed": fmt.Sprint(seed)}}, v1.Platform{}, layers...)
}

// Extend returns base plus one more random layer (seed), sharing base's
// layers: the second pull of it should fetch only the new one.
func Extend(base v1.Image, seed uint64, size int) (v1.Image, error) {
	l, err := Layer([]File{{Path: fmt.Sprintf("extra%d/data", seed), Data: randomBytes(seed, size, 0)}}, Gzip)
	if err != nil {
		return nil, err
	}
	return mutate.AppendLayers(base, l)
}

// Index builds an OCI index holding one small image per platform
// ("linux/amd64", "linux/arm64/v8", …); each image's content names its platform.
func Index(platforms ...string) (v1.ImageIndex, error) {
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, ps := range platforms {
		p, err := v1.ParsePlatform(ps)
		if err != nil {
			return nil, err
		}
		l, err := Layer([]File{{Path: "platform", Data: []byte(ps + "\n")}}, Gzip)
		if err != nil {
			return nil, err
		}
		img, err := Image(v1.Config{Cmd: []string{"/bin/true"}}, *p, l)
		if err != nil {
			return nil, err
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: p}})
	}
	return idx, nil
}

// Big builds the benchmark image: 4 layers of ~25 MB compressed each
// (~100 MB in all), deterministic, partly compressible (each 1 MiB block
// is 3/4 random, 1/4 text). Building it takes a few seconds.
func Big(seed uint64) (v1.Image, error) {
	return Sized(seed, 4, 33<<20)
}

// Sized builds n layers of size uncompressed bytes each (compressed to
// ~3/4 of that), gzip level 1.
func Sized(seed uint64, n, size int) (v1.Image, error) {
	var layers []v1.Layer
	for i := range n {
		data := randomBytes(seed*1000+uint64(i), size, 4)
		tb := Tar([]File{{Path: fmt.Sprintf("big%d/blob", i), Data: data}})
		l, err := LayerFromTar(tb, Gzip, 1)
		if err != nil {
			return nil, err
		}
		layers = append(layers, l)
	}
	return Image(v1.Config{Cmd: []string{"/bin/true"}}, v1.Platform{}, layers...)
}

// randomBytes returns size pseudo-random bytes from seed; with textEvery > 0
// every textEvery-th quarter of each 1 MiB block is compressible text.
func randomBytes(seed uint64, size int, textEvery int) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)) //nolint:gosec // deterministic test content, not secrets
	b := make([]byte, size)
	for i := 0; i+8 <= len(b); i += 8 {
		v := r.Uint64()
		for k := range 8 {
			b[i+k] = byte(v >> (8 * k))
		}
	}
	if textEvery > 0 {
		const block = 1 << 20
		text := []byte("the quick brown ferry jumps over the lazy registry. ")
		for off := 0; off < size; off += block {
			q := off + block*(textEvery-1)/textEvery
			for j := q; j < off+block && j < size; j++ {
				b[j] = text[(j-q)%len(text)]
			}
		}
	}
	return b
}
