// Command ferry runs OCI/Docker images as micro-VMs. One binary holds the CLI,
// the host daemon (ferry daemon) and the multi-tenant registry (ferry registry).
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/ferryvm/ferry/internal/cli"
	"github.com/ferryvm/ferry/internal/vmm"
)

func main() {
	vmm.Reexec() // ferry also runs as the console writer of its VMs
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:])
	stop()
	os.Exit(code)
}
