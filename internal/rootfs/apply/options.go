package apply

import (
	"log/slog"
	"os"
	"runtime"
)

// Limits are the budgets of one Flatten or ApplyDir call: a layer set
// beyond any of them is rejected, not truncated. A zero field means its
// default (DefaultLimits). Each field is a `ferry daemon --layer-*` flag.
type Limits struct {
	// MaxStream bounds the uncompressed bytes of all layers (what the
	// decompressors produce, so gzip and zstd bombs stop here) and, checked
	// at each header, the sum of the sizes of non-sparse regular files.
	MaxStream int64
	// MaxSparse bounds the sum of sparse files' apparent sizes, holes
	// included. Holes cost neither memory nor disk (they stay holes in
	// the spool and in the ext4 base, and a sparse file counts against
	// MaxStream by its data only) but they are read and written as zeros,
	// so this bounds the time a few bytes of layer can cost.
	MaxSparse int64
	// MaxEntries bounds the number of tar entries over all layers.
	MaxEntries int64
	// MaxMetadata bounds the memory held for the tree: every entry is
	// charged a fixed cost plus its name, link target and xattrs. It is
	// the bound on the applier's heap besides the spool memory.
	MaxMetadata int64
	// MaxLayers bounds the number of layers of one image.
	MaxLayers int
	// MaxDepth bounds the depth of every path, as written in an entry and
	// as resolved in the tree (symlinks followed).
	MaxDepth int
	// MaxRatio bounds how many uncompressed bytes a compressed layer may
	// produce per compressed byte, once it has produced 256 MiB.
	MaxRatio int64
	// MinFree is the free space the spool and the ext4 base leave on their
	// filesystem; a build that would go below it fails. Zero means 5% of
	// the filesystem, at most 1 GiB; negative, no reserve.
	MinFree int64
}

// Default limits. Per-entry limits that Linux itself has (PATH_MAX,
// XATTR_NAME_MAX, XATTR_SIZE_MAX, XATTR_LIST_MAX) are constants: see
// entry.go.
const (
	DefaultMaxStream   = 32 << 30 // bytes
	DefaultMaxSparse   = 16 << 30 // bytes
	DefaultMaxEntries  = 1 << 20
	DefaultMaxMetadata = 128 << 20 // bytes
	DefaultMaxLayers   = 256
	DefaultMaxDepth    = 512
	DefaultMaxRatio    = 100
	DefaultSpoolMemory = 64 << 20 // bytes of file data Flatten holds in memory before spilling to disk

	// DefaultMaxSize is the old name of DefaultMaxStream.
	DefaultMaxSize = DefaultMaxStream
)

// DefaultLimits returns the limits a zero Limits stands for.
func DefaultLimits() Limits {
	return Limits{
		MaxStream:   DefaultMaxStream,
		MaxSparse:   DefaultMaxSparse,
		MaxEntries:  DefaultMaxEntries,
		MaxMetadata: DefaultMaxMetadata,
		MaxLayers:   DefaultMaxLayers,
		MaxDepth:    DefaultMaxDepth,
		MaxRatio:    DefaultMaxRatio,
	}
}

// OrDefaults returns l with its zero fields set from DefaultLimits.
func (l Limits) OrDefaults() Limits { return l.withDefaults() }

// withDefaults fills zero fields from DefaultLimits.
func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	set := func(v *int64, def int64) {
		if *v <= 0 {
			*v = def
		}
	}
	set(&l.MaxStream, d.MaxStream)
	set(&l.MaxSparse, d.MaxSparse)
	set(&l.MaxEntries, d.MaxEntries)
	set(&l.MaxMetadata, d.MaxMetadata)
	set(&l.MaxRatio, d.MaxRatio)
	if l.MaxLayers <= 0 {
		l.MaxLayers = d.MaxLayers
	}
	if l.MaxDepth <= 0 {
		l.MaxDepth = d.MaxDepth
	}
	l.MaxDepth = min(l.MaxDepth, pathMax/2) // the deepest a PATH_MAX path can be
	return l
}

// Option configures Flatten and ApplyDir.
type Option func(*options)

type options struct {
	lim         Limits
	spoolDir    string
	spoolMemory int64
	parallelism int
	log         *slog.Logger
}

func newOptions(opts []Option) options {
	o := options{
		lim:         DefaultLimits(),
		spoolDir:    os.TempDir(),
		spoolMemory: DefaultSpoolMemory,
		parallelism: runtime.GOMAXPROCS(0),
		log:         slog.Default(),
	}
	for _, opt := range opts {
		opt(&o)
	}
	o.lim = o.lim.withDefaults()
	if o.parallelism < 1 {
		o.parallelism = 1
	}
	return o
}

// WithLimits replaces all limits (zero fields keep their defaults).
func WithLimits(l Limits) Option { return func(o *options) { o.lim = l } }

// WithMaxSize sets Limits.MaxStream, and Limits.MaxSparse to the same
// value.
func WithMaxSize(n int64) Option {
	return func(o *options) { o.lim.MaxStream, o.lim.MaxSparse = n, n }
}

// WithMaxEntries sets Limits.MaxEntries.
func WithMaxEntries(n int64) Option { return func(o *options) { o.lim.MaxEntries = n } }

// WithMaxMetadata sets Limits.MaxMetadata.
func WithMaxMetadata(n int64) Option { return func(o *options) { o.lim.MaxMetadata = n } }

// WithSpoolDir sets where Flatten keeps its unlinked spool files (the
// decompressed file data of each layer). Put it on the same filesystem as
// the output.
func WithSpoolDir(dir string) Option { return func(o *options) { o.spoolDir = dir } }

// WithSpoolMemory sets how much decompressed file data Flatten keeps in
// memory (the rest goes to spool files in the spool dir).
func WithSpoolMemory(n int64) Option { return func(o *options) { o.spoolMemory = n } }

// WithParallelism sets how many layers Flatten decompresses at once.
func WithParallelism(n int) Option { return func(o *options) { o.parallelism = n } }

// WithLogger sets the logger for warnings about skipped entries.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }
