// Package ext4 makes the ext4 images behind a machine's root filesystem:
// read-only bases written straight from a flattened tar stream (hcsshim's
// tar2ext4, with the inode-bitmap padding it leaves unset fixed so that
// e2fsck -fn is clean, and blocks of zeros left as holes so that sparse
// files stay sparse), and empty sparse scratch filesystems (formatted by
// internal/mkext4, each with its own UUID, only metadata written).
//
// It knows nothing about images, layers or leases.
package ext4
