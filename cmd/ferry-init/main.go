// Command ferry-init is PID 1 of every ferry micro-VM: a small static
// binary (CGO_ENABLED=0) delivered in the initramfs as /init. All of its
// logic is in internal/initd; the run config and control protocol it speaks
// are in internal/guest.
package main

import "github.com/ferryvm/ferry/internal/initd"

func main() { initd.Main() }
