// Command serve runs ferry's host-local registry mirror (internal/mirror)
// over a fresh image store at -root on -addr, as the daemon wires it
// (without the daemon's machines and networks): bench/mirror/run.sh
// measures its push throughput.
package main

import (
	"context"
	"flag"
	"log"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"go.etcd.io/bbolt"

	"github.com/ferryvm/ferry/internal/image"
	"github.com/ferryvm/ferry/internal/mirror"
	"github.com/ferryvm/ferry/internal/paths"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:5103", "listen address")
	root := flag.String("root", "", "store root (created)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := os.MkdirAll(*root, 0o700); err != nil {
		log.Fatal(err)
	}
	db, err := bbolt.Open(filepath.Join(*root, "meta.db"), 0o600, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	st, err := image.Open(ctx, paths.Root(*root), db)
	if err != nil {
		log.Fatal(err)
	}
	m, err := mirror.New(st, filepath.Join(*root, "mirror-uploads"), nil)
	if err != nil {
		log.Fatal(err)
	}
	l, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	if err := m.Serve(ctx, l); err != nil {
		log.Fatal(err)
	}
}
