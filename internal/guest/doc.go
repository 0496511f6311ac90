// Package guest is the contract between the host and ferry-init, the PID 1 of
// every micro-VM. It owns five things and nothing else:
//
//   - the versioned run config (RunConfig) that the host writes into the
//     per-machine initramfs at ConfigPath and init reads at boot; both sides
//     validate it with the same code;
//   - the control protocol: one framed, multiplexed byte-stream protocol that
//     runs over a virtio-serial port (QEMU) or a vsock connection
//     (Firecracker), carrying status, wait-for-exit, signal and exec with
//     stdio streams, tty resize and flow control;
//   - the host-side Client of that protocol (Run pumps an exec's stdio,
//     SignalEntrypoint waits for boot) and the guest-side Serve loop;
//   - the console contract (console.go): the kernel command line that keeps
//     the console for the entrypoint, init's exit marker, ConsoleExit that
//     reads it back from a log's tail, PlatformLine that logs leave out;
//   - the build-helper contract of builder VMs (ferry build): the exec
//     argv that re-runs ferry-init as a step helper, the BuildStep it
//     reads, and the tree stream that moves layers in and out
//     (buildstep.go, treestream.go).
//
// It is linked into ferry-init, so it must import nothing host-side: only the
// standard library and golang.org/x/sys. The init logic itself lives in
// internal/initd; the VMM wiring lives on the host.
package guest
