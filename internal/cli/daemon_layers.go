package cli

import (
	"fmt"
	"strings"

	"github.com/dustin/go-humanize"
	"github.com/spf13/pflag"

	"github.com/ferryvm/ferry/internal/rootfs/apply"
)

// layerLimitFlags binds `ferry daemon --layer-*` to the limits a base
// build holds an image's layers to (docs/rootfs.md, "Limits").
func layerLimitFlags(f *pflag.FlagSet, l *apply.Limits) {
	*l = apply.DefaultLimits()
	f.Var((*byteSize)(&l.MaxStream), "layer-max-stream", "most uncompressed bytes of all layers of an image (decompression bombs stop here)")
	f.Var((*byteSize)(&l.MaxSparse), "layer-max-sparse", "most apparent bytes of an image's sparse files, holes included")
	f.Int64Var(&l.MaxEntries, "layer-max-entries", l.MaxEntries, "most tar entries over all layers of an image")
	f.Var((*byteSize)(&l.MaxMetadata), "layer-max-metadata", "most memory for an image's names, link targets, xattrs and tree")
	f.IntVar(&l.MaxLayers, "layer-max-layers", l.MaxLayers, "most layers of an image")
	f.IntVar(&l.MaxDepth, "layer-max-depth", l.MaxDepth, "deepest path in an image (PATH_MAX bounds the length)")
	f.Int64Var(&l.MaxRatio, "layer-max-ratio", l.MaxRatio, "highest compression ratio of a layer past its first 256 MiB")
	f.Var((*minFree)(&l.MinFree), "layer-min-free", `free space a base build leaves on the data directory's filesystem ("auto": 5%, at most 1 GiB; 0: none)`)
}

// byteSize is a size flag: "32GiB", "512MB", "1048576".
type byteSize int64

func (b *byteSize) String() string { return humanize.IBytes(uint64(*b)) }
func (b *byteSize) Type() string   { return "size" }
func (b *byteSize) Set(s string) error {
	n, err := humanize.ParseBytes(s)
	if err != nil || n == 0 || n > 1<<62 {
		return fmt.Errorf("want a positive size like 16GiB or 512MiB")
	}
	*b = byteSize(n)
	return nil
}

// minFree is --layer-min-free: a size, "auto" (apply's 0) or 0 (none, apply's -1).
type minFree int64

func (m *minFree) String() string {
	switch {
	case *m == 0:
		return "auto"
	case *m < 0:
		return "0"
	}
	return humanize.IBytes(uint64(*m))
}
func (m *minFree) Type() string { return "size" }
func (m *minFree) Set(s string) error {
	switch strings.ToLower(s) {
	case "auto":
		*m = 0
		return nil
	case "0", "none":
		*m = -1
		return nil
	}
	n, err := humanize.ParseBytes(s)
	if err != nil || n > 1<<62 {
		return fmt.Errorf(`want a size like 2GiB, "auto" or 0`)
	}
	*m = minFree(n)
	return nil
}
