// Command mkimage writes one of ferry's locally built images (see package
// testimage) as a `docker save` tarball, so scripts and users can load it
// without the internet:
//
//	go run ./internal/testimage/mkimage -o busybox.tar -t busybox:local busybox
//
// Images: busybox, layered, big.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/ferryvm/ferry/internal/testimage"
)

func main() {
	out := flag.String("o", "image.tar", "output file (docker save format)")
	tag := flag.String("t", "", "tag to record in the tarball (default <image>:local)")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: mkimage [-o FILE] [-t TAG] busybox|layered|big")
		os.Exit(2)
	}
	if err := run(flag.Arg(0), *tag, *out); err != nil {
		fmt.Fprintln(os.Stderr, "mkimage:", err)
		os.Exit(1)
	}
}

func run(kind, tag, out string) error {
	builders := map[string]func() (v1.Image, error){
		"busybox": testimage.Busybox,
		"layered": testimage.Layered,
		"big":     func() (v1.Image, error) { return testimage.Big(1) },
	}
	build, ok := builders[kind]
	if !ok {
		return fmt.Errorf("unknown image %q (want busybox, layered or big)", kind)
	}
	if tag == "" {
		tag = kind + ":local"
	}
	ref, err := name.NewTag(tag)
	if err != nil {
		return fmt.Errorf("tag %q: %w", tag, err)
	}
	img, err := build()
	if err != nil {
		return fmt.Errorf("build %s: %w", kind, err)
	}
	return tarball.WriteToFile(out, ref, img)
}
