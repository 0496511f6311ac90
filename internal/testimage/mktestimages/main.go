// Command mktestimages writes ferry's test images into one OCI image layout
// directory (each tagged with org.opencontainers.image.ref.name), for use
// with skopeo/umoci/crane or `ferry load` after `tar -C DIR -cf x.tar .`:
//
//	go run ./internal/testimage/mktestimages -o testimages [-big]
package main

import (
	"flag"
	"fmt"
	"log"
	"os"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"

	"github.com/ferryvm/ferry/internal/testimage"
)

func main() {
	out := flag.String("o", "testimages", "output OCI layout directory")
	big := flag.Bool("big", false, "also write the ~100 MB benchmark image")
	flag.Parse()
	if err := run(*out, *big); err != nil {
		log.Fatal(err)
	}
}

func run(out string, big bool) error {
	p, err := layout.FromPath(out)
	if err != nil {
		if p, err = layout.Write(out, empty.Index); err != nil {
			return err
		}
	}
	add := func(name string, img v1.Image, err error) error {
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": name})); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		d, _ := img.Digest()
		fmt.Fprintf(os.Stderr, "%s %s\n", name, d)
		return nil
	}
	img, err := testimage.Busybox()
	if err := add("busybox", img, err); err != nil {
		return err
	}
	img, err = testimage.Layered()
	if err := add("layered", img, err); err != nil {
		return err
	}
	idx, err := testimage.Index("linux/amd64", "linux/arm64/v8", "linux/arm/v7")
	if err != nil {
		return err
	}
	if err := p.AppendIndex(idx, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": "multi"})); err != nil {
		return err
	}
	if big {
		img, err = testimage.Big(1)
		if err := add("big", img, err); err != nil {
			return err
		}
	}
	return nil
}
