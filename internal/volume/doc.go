// Package volume owns ferry's named block volumes: sparse files on the data
// root (paths.Root.Volumes) that outlive machines, attached to a machine as
// virtio-blk drives, with their records in the shared bbolt database.
//
// A volume is encrypted by default: its file starts with a LUKS2 header
// written by Debian's cryptsetup with a fixed layout (Layout: header and
// keyslot area sizes, cipher, sector size, PBKDF parameters), so every ferry
// writes the same layout and `cryptsetup luksDump` reads it. Its random
// per-volume key lives in the volume's directory (0600), optionally wrapped
// by a key given to the daemon (WithWrapKey). The host never opens the
// encryption (it has no device-mapper and handles only ciphertext): the
// guest does, with dm-crypt (internal/initd), and makes ext4 on the first
// attach (internal/mkext4). The host checks the key against the header
// (internal/luks2) before a machine boots, so a wrong key is a clear error
// and nothing is written.
//
// One writer at a time: a volume has any number of active read-only
// attachments or one active read-write one, decided in one database
// transaction, so of two machines racing for a volume exactly one gets it.
// An attachment is active while its machine runs (Attach to Deactivate)
// and stays as a reference from the machine's creation to its removal
// (Reference, Release), so a volume a machine mounts cannot be removed;
// two stopped machines may name one volume (Docker's model, which compose
// relies on when it creates a service's new container before removing the
// old one).
//
// Snapshots and volumes made from them are reflink clones where the data
// root's filesystem has them (XFS, btrfs) and sparse copies otherwise; a
// volume attached read-write is snapshotted only by reflink (a copy of a
// file being written would be torn).
//
// Every change is recorded before its side effects and each step is
// idempotent: Open finishes or rolls back what a killed daemon left (a
// half-created volume is removed, an extend is completed, a removal is
// finished) and removes files no record names.
//
// What it does not do: mount, format or resize filesystems (the guest
// does), decide which machine may use a volume beyond the one-writer rule,
// or know about the machine lifecycle (internal/machine calls Attach and
// Release).
package volume
