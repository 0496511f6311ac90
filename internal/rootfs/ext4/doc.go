// Package ext4 makes the ext4 images behind a machine's root filesystem:
// read-only bases written straight from a flattened tar stream (hcsshim's
// tar2ext4, with the inode-bitmap padding it leaves unset fixed so that
// e2fsck -fn is clean, and blocks of zeros left as holes so that sparse
// files stay sparse), and empty sparse scratch filesystems (mkfs.ext4
// with lazy init and no backup metadata, 64 KiB allocated for 8 GiB once copied).
//
// It knows nothing about images, layers or leases.
package ext4
