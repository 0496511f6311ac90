// Command mkrun writes a runnable image to an OCI layout: the busybox test
// image (internal/testimage) plus one layer of -size random bytes, fresh
// per call, so each push uploads it all. bench/mirror/run-bench.sh uses it.
package main

import (
	"flag"
	"log"

	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ferryvm/ferry/internal/testimage"
)

func main() {
	out := flag.String("o", "", "output OCI layout directory")
	size := flag.Int64("size", 32<<20, "random layer bytes")
	flag.Parse()
	if *out == "" {
		log.Fatal("mkrun: -o DIR is required")
	}
	base, err := testimage.Busybox()
	if err != nil {
		log.Fatalf("mkrun: %v", err)
	}
	l, err := random.Layer(*size, types.OCIUncompressedLayer)
	if err != nil {
		log.Fatalf("mkrun: %v", err)
	}
	img, err := mutate.AppendLayers(base, l)
	if err != nil {
		log.Fatalf("mkrun: %v", err)
	}
	p, err := layout.Write(*out, empty.Index)
	if err != nil {
		log.Fatalf("mkrun: %v", err)
	}
	if err := p.AppendImage(img); err != nil {
		log.Fatalf("mkrun: %v", err)
	}
}
