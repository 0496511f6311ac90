//go:build !amd64

package qemu

func cpuidTSCkHz() uint64 { return 0 }
