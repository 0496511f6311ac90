// Package paths documents and computes the layout of ferry's data directory
// (the daemon's --root, /var/lib/ferry by default). Every package that writes
// under the root takes its paths from here, so this comment is the whole map:
//
//	<root>/
//	  daemon.lock                 flock held by the one daemon that owns this root
//	  meta.db                     bbolt: images, leases, bases, machines (one bucket tree per package)
//	  content/                    OCI image layout (the image cache)
//	    oci-layout                {"imageLayoutVersion":"1.0.0"}
//	    index.json                derived from meta.db (buckets images/names/leases): one entry per tag
//	    blobs/sha256/<hex>        verified blobs, read-only, named by digest
//	    ingest/sha256-<hex>       partial download of one blob, kept for resuming (HTTP Range);
//	                              removed on start when older than 24 h
//	    ingest/load-<random>      spooled `ferry load` archive; removed on start
//	  rootfs/
//	    bases/<manifest-hex>.ext4 read-only ext4 base of one image (built to tmp/, fsync, rename)
//	    tmp/                      half-built bases; removed on start
//	  machines/<id>/
//	    scratch.ext4              sparse writable upper disk (overlay mode; ext4 made by mkext4, its own UUID)
//	    rootfs.ext4               writable clone of the base (persistent mode)
//	    initrd.cpio               per-machine run-config cpio (appended to the shared init cpio)
//	    console.log[.1]           guest console, size-capped and rotated
//	    vmm.pid                   VMM pid, start time, driver, accelerator (for re-adoption after a daemon restart)
//	    control.sock              host end of the control channel (virtio-serial or vsock)
//	    vmm.json                  the spec and the plan (argv, accelerator, driver) the last start actually ran
//	  kernel/shared-<digest>.cpio the shared initramfs (ferry-init [+ modules]); older ones pruned
//	  jail/firecracker/ferry-<id>/root/  Firecracker's jailer chroot of a machine (hard links to its
//	                              kernel, initrd, drives; config, log, vsock socket); rebuilt at each start
//	  build/                      ferry build (internal/build)
//	    contexts/ctx-<random>/    a received build context, removed when its build ends (and on start)
//	    work/<build>/             a build's unpacked stages and images (COPY --from), removed likewise
//	    mounts/<hash>.fts         RUN --mount=type=cache content (a tree stream), <hash>.lock held by its build
//	  volumes/<id>/data           a volume: sparse file, a LUKS2 header first when encrypted (internal/volume)
//	  volumes/<id>/key            its random key, 0600 (raw, or wrapped by the daemon's --volume-key-file)
//	  volumes/snapshots/<id>/     a snapshot's data (reflink or sparse copy) and key
//	  volumes/orphaned/<id>/      volume directories no record names: moved aside on start, never deleted
//	  machines/<id>/fs<n>.sock    vhost-user socket of a bind mount's virtiofsd (helper-virtiofsd-*.pid: its pid)
//
// The shared guest kernel and init are looked up by internal/kernel (the
// install dir beside the ferry binary, then /usr/local/lib/ferry).
package paths

import "path/filepath"

// DefaultRoot is the daemon's data directory when --root is not given.
const DefaultRoot = "/var/lib/ferry"

// DefaultSocket is the daemon's API socket when --socket is not given.
const DefaultSocket = "/run/ferry/ferry.sock"

// Root is a data directory.
type Root string

// Lock is the daemon's lock file.
func (r Root) Lock() string { return filepath.Join(string(r), "daemon.lock") }

// MetaDB is the bbolt metadata database.
func (r Root) MetaDB() string { return filepath.Join(string(r), "meta.db") }

// Content is the OCI image layout that holds the image cache.
func (r Root) Content() string { return filepath.Join(string(r), "content") }

// Bases is the directory of read-only ext4 bases.
func (r Root) Bases() string { return filepath.Join(string(r), "rootfs", "bases") }

// RootfsTmp is where bases are built before being renamed into Bases.
func (r Root) RootfsTmp() string { return filepath.Join(string(r), "rootfs", "tmp") }

// ScratchTemplates is where older ferry versions kept formatted scratch
// templates; rootfs removes it.
func (r Root) ScratchTemplates() string { return filepath.Join(string(r), "rootfs", "templates") }

// Machines is the parent of every machine's directory.
func (r Root) Machines() string { return filepath.Join(string(r), "machines") }

// Machine is the directory of one machine.
func (r Root) Machine(id string) string { return filepath.Join(string(r), "machines", id) }

// Jail is the chroot base of Firecracker's jailer (on the data dir's
// filesystem, so a jail's files are hard links).
func (r Root) Jail() string { return filepath.Join(string(r), "jail") }

// Kernel holds the shared initramfs archives built from ferry-init.
func (r Root) Kernel() string { return filepath.Join(string(r), "kernel") }

// Build is ferry build's directory (contexts, work trees, cache mounts).
func (r Root) Build() string { return filepath.Join(string(r), "build") }

// Volumes is the directory of volumes and their snapshots.
func (r Root) Volumes() string { return filepath.Join(string(r), "volumes") }

// WarmTemplates is the directory of warm-start templates (saved guests
// that machines are restored from).
func (r Root) WarmTemplates() string { return filepath.Join(string(r), "templates") }
