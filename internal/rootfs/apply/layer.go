package apply

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"sync/atomic"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/ferryvm/ferry/internal/errdefs"
)

// budget is a byte or entry allowance shared by all layers of one call.
type budget struct {
	left atomic.Int64
	what string
}

func newBudget(n int64, what string) *budget {
	b := &budget{what: what}
	b.left.Store(n)
	return b
}

func (b *budget) take(n int64, limit int64) error {
	if b.left.Add(-n) < 0 {
		return fmt.Errorf("%s exceeds the limit of %d: %w", b.what, limit, errdefs.ErrInvalidArgument)
	}
	return nil
}

// limits are the budgets of one Flatten or ApplyDir call.
type limits struct {
	o        options
	stream   *budget // uncompressed tar bytes
	logical  *budget // regular files' logical sizes
	entries  *budget
	spoolMem *budget // memory for spooled file data
}

func newLimits(o options) *limits {
	return &limits{
		o:        o,
		stream:   newBudget(o.maxSize, "uncompressed layer size"),
		logical:  newBudget(o.maxSize, "total file size"),
		entries:  newBudget(o.maxEntries, "number of entries"),
		spoolMem: newBudget(o.spoolMemory, "spool memory"),
	}
}

// layerInfo names a layer in errors and carries the digest it must match.
type layerInfo struct {
	index  int
	layer  v1.Layer
	diffID v1.Hash
	name   string // compressed digest when known, else diff_id
}

// layersOf returns the image's layers paired with the config's diff_ids.
func layersOf(img v1.Image) ([]layerInfo, error) {
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("read image config: %w", err)
	}
	ls, err := img.Layers()
	if err != nil {
		return nil, fmt.Errorf("list layers: %w", err)
	}
	if len(ls) != len(cfg.RootFS.DiffIDs) {
		return nil, fmt.Errorf("image has %d layers but its config lists %d diff_ids: %w",
			len(ls), len(cfg.RootFS.DiffIDs), errdefs.ErrInvalidArgument)
	}
	out := make([]layerInfo, len(ls))
	for i, l := range ls {
		li := layerInfo{index: i, layer: l, diffID: cfg.RootFS.DiffIDs[i], name: cfg.RootFS.DiffIDs[i].String()}
		if d, err := l.Digest(); err == nil {
			li.name = d.String()
		}
		out[i] = li
	}
	return out, nil
}

var (
	gzipMagic = []byte{0x1f, 0x8b}
	zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}
)

// verifiedStream is a layer's uncompressed tar stream. It hashes and
// counts every byte, and Close-time verify compares the digest with the
// config's diff_id after draining whatever the tar reader left unread.
type verifiedStream struct {
	li     layerInfo
	src    io.Reader
	closer []io.Closer
	h      hash.Hash
	lim    *limits
	err    error
}

func openLayer(li layerInfo, lim *limits) (*verifiedStream, error) {
	if li.diffID.Algorithm != "sha256" {
		return nil, fmt.Errorf("layer %s: unsupported diff_id algorithm %q: %w", li.name, li.diffID.Algorithm, errdefs.ErrInvalidArgument)
	}
	rc, err := li.layer.Compressed()
	if err != nil {
		return nil, fmt.Errorf("layer %s: open: %w", li.name, err)
	}
	vs := &verifiedStream{li: li, closer: []io.Closer{rc}, h: sha256.New(), lim: lim}
	br := bufio.NewReaderSize(rc, 1<<20)
	magic, _ := br.Peek(4)
	switch {
	case bytes.HasPrefix(magic, gzipMagic):
		zr, err := gzip.NewReader(br)
		if err != nil {
			_ = vs.Close()
			return nil, fmt.Errorf("layer %s: gzip: %w", li.name, err)
		}
		zr.Multistream(true)
		vs.src, vs.closer = zr, append(vs.closer, zr)
	case bytes.HasPrefix(magic, zstdMagic):
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(1<<30))
		if err != nil {
			_ = vs.Close()
			return nil, fmt.Errorf("layer %s: zstd: %w", li.name, err)
		}
		vs.src, vs.closer = zr, append(vs.closer, closerFunc(func() error { zr.Close(); return nil }))
	default:
		vs.src = br
	}
	return vs, nil
}

type closerFunc func() error

func (f closerFunc) Close() error { return f() }

func (vs *verifiedStream) Read(p []byte) (int, error) {
	if vs.err != nil {
		return 0, vs.err
	}
	n, err := vs.src.Read(p)
	if n > 0 {
		_, _ = vs.h.Write(p[:n])
		if lerr := vs.lim.stream.take(int64(n), vs.lim.o.maxSize); lerr != nil {
			vs.err = fmt.Errorf("layer %s: %w", vs.li.name, lerr)
			return 0, vs.err
		}
	}
	return n, err
}

// verify drains the stream (tar padding and trailing blocks count towards
// the diff_id) and checks the digest.
func (vs *verifiedStream) verify() error {
	buf := make([]byte, 64<<10)
	if _, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{vs}, buf); err != nil {
		return fmt.Errorf("layer %s: read: %w", vs.li.name, err)
	}
	got := fmt.Sprintf("%x", vs.h.Sum(nil))
	if got != vs.li.diffID.Hex {
		return fmt.Errorf("layer %s: uncompressed digest sha256:%s does not match diff_id %s: %w",
			vs.li.name, got, vs.li.diffID, errdefs.ErrInvalidArgument)
	}
	return nil
}

// Close releases the decompressor and the blob.
func (vs *verifiedStream) Close() error {
	var errs []error
	for i := len(vs.closer) - 1; i >= 0; i-- {
		errs = append(errs, vs.closer[i].Close())
	}
	return errors.Join(errs...)
}
