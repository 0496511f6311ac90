// Command mkimage writes the registry benchmark's test image: an OCI image
// layout holding one image of N uncompressed layers of random (so
// incompressible) bytes, about SIZE in all.
//
//	mkimage -o DIR [-size 100MB] [-layers 4]
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

func main() {
	out := flag.String("o", "", "output OCI layout directory")
	size := flag.Int64("size", 100<<20, "total layer bytes")
	layers := flag.Int("layers", 4, "number of layers")
	flag.Parse()
	if err := run(*out, *size, *layers); err != nil {
		fmt.Fprintln(os.Stderr, "mkimage:", err)
		os.Exit(1)
	}
}

func run(out string, size int64, n int) error {
	if out == "" || n < 1 {
		return fmt.Errorf("usage: mkimage -o DIR [-size BYTES] [-layers N]")
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	for i := 0; i < n; i++ {
		l, err := random.Layer(size/int64(n), types.OCIUncompressedLayer)
		if err != nil {
			return err
		}
		if img, err = mutate.AppendLayers(img, l); err != nil {
			return err
		}
	}
	p, err := layout.Write(out, empty.Index)
	if err != nil {
		return err
	}
	return p.AppendImage(img)
}
