package apply

import (
	"log/slog"
	"os"
	"runtime"
)

// Default limits. A layer set beyond them is rejected, not truncated.
const (
	DefaultMaxSize     = 64 << 30 // bytes: uncompressed tar streams, and separately logical file sizes
	DefaultMaxEntries  = 4 << 20  // tar entries over all layers
	DefaultSpoolMemory = 1 << 30  // bytes of file data Flatten holds in memory before spilling to disk
)

// Option configures Flatten and ApplyDir.
type Option func(*options)

type options struct {
	maxSize     int64
	maxEntries  int64
	spoolDir    string
	spoolMemory int64
	parallelism int
	log         *slog.Logger
}

func newOptions(opts []Option) options {
	o := options{
		maxSize:     DefaultMaxSize,
		maxEntries:  DefaultMaxEntries,
		spoolDir:    os.TempDir(),
		spoolMemory: DefaultSpoolMemory,
		parallelism: runtime.GOMAXPROCS(0),
		log:         slog.Default(),
	}
	for _, opt := range opts {
		opt(&o)
	}
	if o.parallelism < 1 {
		o.parallelism = 1
	}
	return o
}

// WithMaxSize bounds the total uncompressed size of all layers and, as a
// separate budget, the total logical size of their regular files (sparse
// files count at their full size). It stops decompression bombs.
func WithMaxSize(n int64) Option { return func(o *options) { o.maxSize = n } }

// WithMaxEntries bounds the number of tar entries over all layers.
func WithMaxEntries(n int64) Option { return func(o *options) { o.maxEntries = n } }

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
