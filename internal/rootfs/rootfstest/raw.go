package rootfstest

import (
	"bytes"
	"fmt"
	"io"
	"maps"
	"path"
	"slices"
	"strconv"
	"sync"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// SparseEntry returns the raw tar blocks of a GNU sparse 1.0 file (as
// `tar --sparse --format=pax` writes it): a PAX header naming the file
// and its apparent size, then a ustar entry whose content is the sparse
// map followed by the data fragments.
func SparseEntry(name string, size int64, frags map[int64]string) []byte {
	offs := slices.Sorted(maps.Keys(frags))
	var m bytes.Buffer
	fmt.Fprintf(&m, "%d\n", len(offs))
	for _, o := range offs {
		fmt.Fprintf(&m, "%d\n%d\n", o, len(frags[o]))
	}
	content := pad(m.Bytes())
	for _, o := range offs {
		content = append(content, frags[o]...)
	}
	pax := PAXRecords([][2]string{
		{"GNU.sparse.major", "1"}, {"GNU.sparse.minor", "0"},
		{"GNU.sparse.name", name}, {"GNU.sparse.realsize", strconv.FormatInt(size, 10)},
	})
	var out bytes.Buffer
	out.Write(Header("PaxHeaders/"+path.Base(name), 'x', int64(len(pax))))
	out.Write(pad(pax))
	out.Write(Header("GNUSparseFile.0/"+path.Base(name), '0', int64(len(content))))
	out.Write(pad(content))
	return out.Bytes()
}

// PAXRecords encodes PAX extended header records in the given order.
func PAXRecords(recs [][2]string) []byte {
	var b bytes.Buffer
	for _, r := range recs {
		rec := " " + r[0] + "=" + r[1] + "\n"
		n := len(rec)
		for len(strconv.Itoa(n))+len(rec) != n {
			n = len(strconv.Itoa(n)) + len(rec)
		}
		b.WriteString(strconv.Itoa(n) + rec)
	}
	return b.Bytes()
}

// Header returns one ustar header block (mode 0644, mtime Epoch; a size
// of 8 GiB or more in base-256).
func Header(name string, typ byte, size int64) []byte {
	b := make([]byte, 512)
	copy(b[0:100], name)
	octal := func(f []byte, v int64) { copy(f, fmt.Sprintf("%0*o", len(f)-1, v)) }
	octal(b[100:108], 0o644)
	octal(b[108:116], 0)
	octal(b[116:124], 0)
	if size < 1<<33 {
		octal(b[124:136], size)
	} else { // base-256, as GNU tar writes sizes of 8 GiB and more
		b[124] = 0x80
		for i := 135; i > 124; i, size = i-1, size>>8 {
			b[i] = byte(size)
		}
	}
	octal(b[136:148], Epoch.Unix())
	b[156] = typ
	copy(b[257:265], "ustar\x0000")
	copy(b[148:156], "        ")
	sum := 0
	for _, c := range b {
		sum += int(c)
	}
	copy(b[148:156], fmt.Sprintf("%06o\x00 ", sum))
	return b
}

func pad(b []byte) []byte {
	if r := len(b) % 512; r != 0 {
		b = append(b, make([]byte, 512-r)...)
	}
	return b
}

var (
	bombMu sync.Mutex
	bombs  = map[string][]byte{}
)

// Bomb returns a compressed layer (gzip, or zstd) holding one regular
// file of size zero bytes. It is built from concatenated members (gzip)
// or frames (zstd), one compressed MiB of zeros repeated, so it costs
// nothing to make; readers decompress them as one stream.
func Bomb(t testing.TB, name string, size int64, useZstd bool) v1.Layer {
	return TruncatedBomb(t, name, size, size, useZstd)
}

// TruncatedBomb is a Bomb whose header claims claim bytes but whose
// stream ends after data bytes of zeros (data ≤ claim; the end of the
// archive is missing when they differ).
func TruncatedBomb(t testing.TB, name string, claim, data int64, useZstd bool) v1.Layer {
	t.Helper()
	size := data
	key := fmt.Sprintf("%s/%d/%d/%v", name, claim, data, useZstd)
	bombMu.Lock()
	blob, ok := bombs[key]
	if !ok {
		compress := func(b []byte) []byte { return compressed(b, useZstd) }
		rest := size
		if claim == data {
			rest += (512-size%512)%512 + 1024 // padding, end of archive
		}
		blob = compress(Header(name, '0', claim))
		mib := compress(make([]byte, 1<<20))
		for ; rest >= 1<<20; rest -= 1 << 20 {
			blob = append(blob, mib...)
		}
		blob = append(blob, compress(make([]byte, rest))...)
		bombs[key] = blob
	}
	bombMu.Unlock()
	return blobLayer(t, blob, useZstd)
}

// TailBomb is the uncompressed tar followed by tail zero bytes after its
// end, gzip-compressed (a tail readers must still read: it is part of
// the layer's diff_id).
func TailBomb(t testing.TB, tarball_ []byte, tail int64) v1.Layer {
	t.Helper()
	blob := compressed(tarball_, false)
	mib := compressed(make([]byte, 1<<20), false)
	for ; tail >= 1<<20; tail -= 1 << 20 {
		blob = append(blob, mib...)
	}
	return blobLayer(t, append(blob, compressed(make([]byte, tail), false)...), false)
}

func compressed(b []byte, useZstd bool) []byte {
	var buf bytes.Buffer
	var zw io.WriteCloser
	if useZstd {
		zw, _ = zstd.NewWriter(&buf, zstd.WithEncoderLevel(zstd.SpeedFastest))
	} else {
		zw, _ = gzip.NewWriterLevel(&buf, gzip.BestCompression)
	}
	_, _ = zw.Write(b)
	_ = zw.Close()
	return buf.Bytes()
}

func blobLayer(t testing.TB, blob []byte, useZstd bool) v1.Layer {
	t.Helper()
	mt := types.OCILayer
	if useZstd {
		mt = types.OCILayerZStd
	}
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(blob)), nil },
		tarball.WithMediaType(mt), tarball.WithCompressedCaching)
	if err != nil {
		t.Fatalf("layer: %v", err)
	}
	return l
}
