// Package initd is the logic of ferry-init, PID 1 of every ferry micro-VM.
//
// Boot is a table of named steps (Steps), each a value that can be printed
// and tested: mount the kernel filesystems, load modules (fallback kernel),
// start the control server, read the run config, assemble the root
// (overlay of a read-only base and a scratch disk, or one writable disk) and
// switch into it, mount the rest (/dev/pts, /dev/shm, /run, cgroup2, ...),
// write hostname, /etc/hosts and /etc/resolv.conf, bring up the network,
// mount volumes, set rlimits, resolve the user, environment, working
// directory and argv, and spawn the entrypoint. Then init supervises: it
// forwards signals, reaps every zombie, detects OOM kills, serves the
// control protocol of internal/guest (status, wait, signal, exec), and when
// the entrypoint ends it reports the exit status (over the control channel
// and as one console line), stops what is left, syncs, remounts the disks
// read-only and powers off.
//
// A step that fails ends the boot the same way: one line on the console, a
// Failure with a distinct reason over the control channel, power-off. PID 1
// never exits (that would panic the kernel) and never hangs.
//
// Pure parts (mount tables, user and env resolution, file contents) are
// plain functions; side effects go through small interfaces so steps can be
// tested without a VM. Real boots are tested under QEMU with inittest.
package initd
