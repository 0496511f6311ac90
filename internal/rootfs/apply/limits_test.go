package apply_test

import (
	"archive/tar"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ferryvm/ferry/internal/rootfs/apply"
	ti "github.com/ferryvm/ferry/internal/rootfs/rootfstest"
)

// limitCases are memory, disk and time bombs: each is rejected at the
// entry that crosses a limit, with the limit in the error, or (the
// siblings that are legitimate) applied within the limits.
func limitCases(t testing.TB) []badCase {
	long := strings.Repeat("abcdefgh/", 500) + "f" // 4501 bytes, components well under 255
	deep := func(n int) string { return strings.Repeat("d/", n) }
	big250 := func(n int) string { return strings.TrimSuffix(strings.Repeat(strings.Repeat("x", 249)+"/", n), "/") }
	var manyDeep []ti.E
	for i := 1; i <= 600; i++ {
		manyDeep = append(manyDeep, ti.Dir(deep(i)))
	}
	var manyXattrs = map[string]string{}
	for i := range 300 {
		manyXattrs[fmt.Sprintf("user.%s%03d", strings.Repeat("n", 240), i)] = "v"
	}
	var oneDir []ti.E
	oneDir = append(oneDir, ti.Dir("d/"))
	for i := range 3000 {
		oneDir = append(oneDir, ti.File(fmt.Sprintf("d/f%d", i), ""))
	}
	chain := []ti.E{ti.File("h0", "linked")}
	for i := 1; i < 1000; i++ {
		chain = append(chain, ti.Hardlink(fmt.Sprintf("h%d", i), fmt.Sprintf("h%d", i-1)))
	}
	var tree, reopaque []ti.E
	for i := range 1000 {
		tree = append(tree, ti.File(fmt.Sprintf("t/a%d/b/f%d", i%50, i), "x"))
		reopaque = append(reopaque, ti.File(fmt.Sprintf("t/x%d", i), "y"), ti.Opaque("t/"))
	}
	paxKeys := map[string]string{}
	for i := range 20000 {
		paxKeys[fmt.Sprintf("ferry.k%05d", i)] = "v"
	}
	walk := strings.Repeat("./", 2046) // each symlink below is under PATH_MAX; resolving t3 visits 6k components
	empty := ti.Tar(t)
	sparse := map[int64]string{0: "head", 20 << 20: "middle", 48<<20 - 4: "tail"}
	return []badCase{
		// Path length (PATH_MAX) and depth, as written and as resolved.
		{name: "pax-path-64k-32k-components", layers: [][]ti.E{{ti.File(strings.Repeat("a/", 32768)+"f", "x")}},
			wantErr: "longer than PATH_MAX", entry: strings.Repeat("a/", 32768) + "f"},
		{name: "pax-path-just-over-path-max", layers: [][]ti.E{{ti.File(strings.Repeat("p", 200)+"/"+strings.Repeat("q/", 1948), "x")}},
			wantErr: "4097 bytes, longer than PATH_MAX", entry: strings.Repeat("p", 200) + "/" + strings.Repeat("q/", 1948)},
		{name: "gnu-long-name", layers: [][]ti.E{{{Name: long, Body: "x", Format: tar.FormatGNU}}},
			wantErr: "longer than PATH_MAX", entry: long},
		{name: "gnu-long-link-hardlink", layers: [][]ti.E{{ti.File("f", "x"), {Name: "h", Type: tar.TypeLink, Link: long, Format: tar.FormatGNU}}},
			wantErr: "longer than PATH_MAX", entry: "h"},
		{name: "pax-long-symlink-target", layers: [][]ti.E{{ti.Symlink("l", long)}}, wantErr: "longer than PATH_MAX", entry: "l"},
		{name: "deep-one-entry", layers: [][]ti.E{{ti.File(deep(600)+"f", "x")}},
			wantErr: "601 levels deep, more than the limit of 512", entry: deep(600) + "f"},
		{name: "deep-many-entries", layers: [][]ti.E{manyDeep}, wantErr: "513 levels deep, more than the limit of 512", entry: deep(513)},
		{name: "deep-through-symlink", layers: [][]ti.E{{ti.Symlink("s", strings.TrimSuffix(deep(300), "/")), ti.File("s/"+strings.Repeat("e/", 300)+"f", "x")}},
			wantErr: "resolved path is 513 levels deep", entry: "s/" + strings.Repeat("e/", 300) + "f"},
		{name: "long-through-symlink", layers: [][]ti.E{{ti.Symlink("s", big250(16)), ti.File("s/"+big250(15)+"/f", "x")}},
			wantErr: "resolved path is longer than PATH_MAX", entry: "s/" + big250(15) + "/f"},
		{name: "max-depth-option", layers: [][]ti.E{{ti.File(deep(9)+"f", "x")}}, opts: []apply.Option{apply.WithLimits(apply.Limits{MaxDepth: 8})},
			wantErr: "10 levels deep, more than the limit of 8 (--layer-max-depth)", entry: deep(9) + "f"},
		{name: "symlink-walk-bomb", layers: [][]ti.E{{ti.Dir("d/"), ti.Symlink("t1", walk+"d"), ti.Symlink("t2", "t1/"+walk), ti.Symlink("t3", "t2/"+walk), ti.File("t3/f", "x")}},
			wantErr: "visits more than 4096 components", entry: "t3/f"},
		// xattrs: the kernel's limits, and the metadata budget.
		{name: "xattr-value-over-xattr-size-max", layers: [][]ti.E{{{Name: "f", Body: "x", Xattrs: map[string]string{"user.big": strings.Repeat("v", 64<<10+1)}}}},
			wantErr: "XATTR_SIZE_MAX", entry: "f"},
		{name: "xattr-name-over-xattr-name-max", layers: [][]ti.E{{{Name: "f", Body: "x", Xattrs: map[string]string{"user." + strings.Repeat("n", 300): "v"}}}},
			wantErr: "XATTR_NAME_MAX", entry: "f"},
		{name: "xattr-names-over-xattr-list-max", layers: [][]ti.E{{{Name: "f", Body: "x", Xattrs: manyXattrs}}},
			wantErr: "XATTR_LIST_MAX", entry: "f"},
		{name: "metadata-budget", layers: [][]ti.E{{ti.File(strings.Repeat("abcdefgh/", 330)+"f0", ""), ti.File(strings.Repeat("abcdefgh/", 330)+"f1", "")}},
			opts:    []apply.Option{apply.WithMaxMetadata(30000)},
			wantErr: "metadata (names, link targets, xattrs, tree) exceeds the limit of 30000 bytes", entry: strings.Repeat("abcdefgh/", 330) + "f1"},
		// Sparse files: counted by their data, holes stay holes; a claim
		// beyond the sparse budget fails at its header.
		{name: "sparse-claims-1tib", layers: [][]ti.E{{{Name: "big", Size: 1 << 40, Sparse: map[int64]string{0: "x"}}}},
			wantErr: "total apparent size of sparse files (holes included) exceeds the limit of 17179869184 bytes (16 GiB, --layer-max-sparse)", entry: "big"},
		{name: "sparse-stays-sparse", layers: [][]ti.E{{{Name: "s", Size: 48 << 20, Sparse: sparse}, {Name: "z", Body: strings.Repeat("\x00", 1<<20)}}},
			check: wantSparse(map[string]int64{"s": 48 << 20, "z": 1 << 20})},
		// Compressed bombs: the stream budget counts decompressed bytes, and
		// a ratio beyond MaxRatio stops a bomb early.
		{name: "gzip-bomb-ratio", image: func(t testing.TB) []v1.Layer { return []v1.Layer{ti.Bomb(t, "zeros", 300<<20, false)} },
			wantErr: "a ratio above the limit of 100:1"},
		{name: "zstd-bomb-ratio", image: func(t testing.TB) []v1.Layer { return []v1.Layer{ti.Bomb(t, "zeros", 300<<20, true)} },
			wantErr: "a ratio above the limit of 100:1"},
		{name: "zstd-bomb-stream", image: func(t testing.TB) []v1.Layer { return []v1.Layer{ti.Bomb(t, "zeros", 300<<20, true)} },
			opts: []apply.Option{apply.WithMaxSize(64 << 20)}, wantErr: "exceeds the limit of 67108864 bytes"},
		// Tails after the end of the archive count towards the stream.
		{name: "garbage-tail", raw: [][]byte{append(ti.Tar(t, ti.File("f", "x")), bytes.Repeat([]byte("garbage!"), 256<<10)...)},
			opts: []apply.Option{apply.WithMaxSize(1 << 20)}, wantErr: "uncompressed layer size exceeds the limit"},
		{name: "zero-block-tail", raw: [][]byte{append(ti.Tar(t, ti.File("f", "x")), make([]byte, 64<<10)...)}},
		// Counts: layers, entries, one huge directory, chains, whiteouts.
		{name: "too-many-layers", raw: [][]byte{empty, empty, empty, empty, empty, empty},
			opts: []apply.Option{apply.WithLimits(apply.Limits{MaxLayers: 5})}, wantErr: "6 layers, more than the limit of 5", noLayer: true},
		{name: "many-entries-one-dir", layers: [][]ti.E{oneDir}, opts: []apply.Option{apply.WithMaxEntries(2500)},
			wantErr: "number of entries exceeds the limit of 2500", entry: "d/f2499"},
		{name: "many-entries-one-dir-applies", layers: [][]ti.E{oneDir}},
		{name: "hardlink-chain", layers: [][]ti.E{chain}},
		{name: "whiteout-of-huge-tree", layers: [][]ti.E{tree, {ti.Whiteout("", "t"), ti.File("after", "x")}}},
		{name: "repeated-opaque-markers", layers: [][]ti.E{tree, reopaque}, check: wantFile("t/x999", "y")},
		{name: "pax-many-keys", layers: [][]ti.E{{{Name: "f", Body: "x", PAX: paxKeys}}}, check: wantFile("f", "x")},
		{name: "pax-record-over-1mib", raw: [][]byte{paxTar(map[string]string{"ferry.big": strings.Repeat("v", 2<<20)}, "f", "x")},
			wantErr: "header field too long"},
	}
}

// wantSparse checks that each file has its apparent size and holds
// under 1 MiB of disk.
func wantSparse(files map[string]int64) func(*testing.T, string, string) {
	return func(t *testing.T, root, _ string) {
		t.Helper()
		for name, size := range files {
			st, err := os.Stat(filepath.Join(root, name))
			if err != nil {
				t.Fatal(err)
			}
			alloc := st.Sys().(*syscall.Stat_t).Blocks * 512
			if st.Size() != size || alloc > 1<<20 {
				t.Fatalf("%s: size %d, %d bytes allocated; want %d, sparse", name, st.Size(), alloc, size)
			}
		}
	}
}

// paxTar writes a one-file tar whose PAX header archive/tar's writer
// would refuse to write.
func paxTar(recs map[string]string, name, body string) []byte {
	var list [][2]string
	for k, v := range recs {
		list = append(list, [2]string{k, v})
	}
	pad := func(b []byte) []byte { return append(b, make([]byte, (512-len(b)%512)%512)...) }
	pax := ti.PAXRecords(list)
	out := append(ti.Header("PaxHeaders/"+name, 'x', int64(len(pax))), pad(pax)...)
	out = append(out, ti.Header(name, '0', int64(len(body)))...)
	out = append(out, pad([]byte(body))...)
	return append(out, make([]byte, 1024)...)
}
