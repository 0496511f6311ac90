package apply

import (
	"archive/tar"
	"bufio"
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"strings"
	"sync/atomic"

	"github.com/dustin/go-humanize"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/ferryvm/ferry/internal/errdefs"
)

// budget is a byte or entry allowance shared by all layers of one call.
type budget struct {
	left  atomic.Int64
	limit int64
	what  string // "number of entries"
	unit  string // "bytes", "entries"; "" for no unit
	flag  string // the daemon flag that raises it; "" for none
}

func newBudget(n int64, what, unit, flag string) *budget {
	b := &budget{limit: n, what: what, unit: unit, flag: flag}
	b.left.Store(n)
	return b
}

func (b *budget) take(n int64) error {
	if b.left.Add(-n) < 0 {
		var notes []string
		if b.unit == "bytes" {
			notes = append(notes, humanize.IBytes(uint64(b.limit)))
		}
		if b.flag != "" {
			notes = append(notes, b.flag)
		}
		lim := fmt.Sprintf("%d", b.limit)
		if b.unit == "bytes" {
			lim += " bytes"
		}
		if len(notes) > 0 {
			lim += " (" + strings.Join(notes, ", ") + ")"
		}
		return fmt.Errorf("%s exceeds the limit of %s: %w", b.what, lim, errdefs.ErrInvalidArgument)
	}
	return nil
}

func (b *budget) used() int64 { return b.limit - b.left.Load() }

// limits are the budgets of one Flatten or ApplyDir call.
type limits struct {
	Limits
	stream   *budget // uncompressed tar bytes; also non-sparse file sizes at their header
	sparse   *budget // sparse files' apparent sizes
	entries  *budget
	metadata *budget
	spoolMem *budget // memory for spooled file data (spills to disk, never fails)
}

func newLimits(o options) *limits {
	l := o.lim
	return &limits{
		Limits:   l,
		stream:   newBudget(l.MaxStream, "uncompressed layer size", "bytes", "--layer-max-stream"),
		sparse:   newBudget(l.MaxSparse, "total apparent size of sparse files (holes included)", "bytes", "--layer-max-sparse"),
		entries:  newBudget(l.MaxEntries, "number of entries", "", "--layer-max-entries"),
		metadata: newBudget(l.MaxMetadata, "metadata (names, link targets, xattrs, tree)", "bytes", "--layer-max-metadata"),
		spoolMem: newBudget(o.spoolMemory, "spool memory", "bytes", ""),
	}
}

// admit counts hdr against the budgets and parses it. The stream budget
// is also charged a non-sparse file's size up front, so a header that
// claims more than is left fails before its content is read.
func (l *limits) admit(li layerInfo, hdr *tar.Header) (op, error) {
	// Strings archive/tar parsed from a PAX header share its buffer: a
	// name kept from one would keep the whole header (up to 1 MiB) alive.
	hdr.Name, hdr.Linkname = strings.Clone(hdr.Name), strings.Clone(hdr.Linkname)
	fail := func(err error) (op, error) { return op{}, &EntryError{Layer: li.name, Entry: hdr.Name, Err: err} }
	if err := l.entries.take(1); err != nil {
		return fail(err)
	}
	o, err := parseEntry(hdr, l.MaxDepth)
	if err != nil {
		return fail(err)
	}
	if err := l.metadata.take(o.cost); err != nil {
		return fail(err)
	}
	if o.kind != opFile {
		return o, nil
	}
	if !o.sparse && o.size > l.stream.left.Load() {
		return fail(fmt.Errorf("total file size exceeds the limit of %d bytes (%s, --layer-max-stream): %w",
			l.MaxStream, humanize.IBytes(uint64(l.MaxStream)), errdefs.ErrInvalidArgument))
	}
	if o.sparse {
		if err := l.sparse.take(o.size); err != nil {
			return fail(err)
		}
	}
	if o.size > maxFileSize {
		return fail(invalid("file is %d bytes, larger than the largest file an ext4 base holds (%d)", o.size, int64(maxFileSize)))
	}
	return o, nil
}

// layerInfo names a layer in errors and carries the digest it must match.
type layerInfo struct {
	index  int
	layer  v1.Layer
	diffID v1.Hash
	name   string // compressed digest when known, else diff_id
}

// layersOf returns the image's layers paired with the config's diff_ids.
func layersOf(img v1.Image, maxLayers int) ([]layerInfo, error) {
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("read image config: %w", err)
	}
	ls, err := img.Layers()
	if err != nil {
		return nil, fmt.Errorf("list layers: %w", err)
	}
	if len(ls) > maxLayers {
		return nil, fmt.Errorf("image has %d layers, more than the limit of %d (--layer-max-layers): %w",
			len(ls), maxLayers, errdefs.ErrInvalidArgument)
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
	li         layerInfo
	src        io.Reader
	closer     []io.Closer
	h          hash.Hash
	lim        *limits
	compressed *countingReader // nil for an uncompressed layer
	produced   int64
	limit      error // the limit the stream hit, if any
	err        error // limit, naming the layer
}

// ratioFloor is how much a compressed layer may produce before its
// compression ratio is checked against Limits.MaxRatio.
const ratioFloor = 256 << 20

// zstdMaxWindow bounds the window a zstd frame may ask the decoder to
// allocate (zstd -19 uses 8 MiB, --ultra -22 and --long 128 MiB).
const zstdMaxWindow = 64 << 20

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
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
	cr := &countingReader{r: rc}
	br := bufio.NewReaderSize(cr, 1<<20)
	magic, _ := br.Peek(4)
	switch {
	case bytes.HasPrefix(magic, gzipMagic):
		zr, err := gzip.NewReader(br)
		if err != nil {
			_ = vs.Close()
			return nil, fmt.Errorf("layer %s: gzip: %w", li.name, err)
		}
		zr.Multistream(true)
		vs.src, vs.closer, vs.compressed = zr, append(vs.closer, zr), cr
	case bytes.HasPrefix(magic, zstdMagic):
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(zstdMaxWindow), zstd.WithDecoderMaxMemory(zstdMaxWindow))
		if err != nil {
			_ = vs.Close()
			return nil, fmt.Errorf("layer %s: zstd: %w", li.name, err)
		}
		vs.src, vs.closer, vs.compressed = zr, append(vs.closer, closerFunc(func() error { zr.Close(); return nil })), cr
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
		vs.produced += int64(n)
		if lerr := vs.lim.stream.take(int64(n)); lerr != nil {
			vs.limit, vs.err = lerr, fmt.Errorf("layer %s: %w", vs.li.name, lerr)
			return 0, vs.err
		}
		if c := vs.compressed; c != nil && vs.produced > ratioFloor && vs.produced/vs.lim.MaxRatio > c.n {
			vs.limit = fmt.Errorf("%d compressed bytes decompress to more than %d, a ratio above the limit of %d:1 (--layer-max-ratio): %w",
				c.n, vs.produced, vs.lim.MaxRatio, errdefs.ErrInvalidArgument)
			vs.err = fmt.Errorf("layer %s: %w", vs.li.name, vs.limit)
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
		if vs.err != nil {
			return vs.err // a limit, already naming the layer
		}
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

// readErr is the error of tr.Next on vs: a limit vs hit (it names the
// layer), a malformed archive (invalid argument), or a read failure.
func (vs *verifiedStream) readErr(err error) error {
	if vs.err != nil {
		return vs.err
	}
	if errors.Is(err, tar.ErrHeader) || errors.Is(err, tar.ErrFieldTooLong) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("layer %s: malformed tar (%v): %w", vs.li.name, err, errdefs.ErrInvalidArgument)
	}
	return fmt.Errorf("layer %s: read tar: %w", vs.li.name, err)
}

// entryErr is the error of reading entry name's content: the limit the
// stream hit, or err.
func (vs *verifiedStream) entryErr(name string, err error) error {
	if vs.limit != nil {
		err = vs.limit
	}
	return &EntryError{Layer: vs.li.name, Entry: name, Err: err}
}
