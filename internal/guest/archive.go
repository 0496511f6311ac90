package guest

import (
	"os"
	"time"
)

// Copying files in and out of a running machine (docker cp) re-executes
// ferry-init as a helper through an exec request, as builder VMs do
// (BuildHelper): argv is [BuildHelper, ArchiveHelperArg, op, path] and the
// helper runs in the machine's root as root:
//
//	stat PATH   stdout: PathStat as JSON
//	get  PATH   stdout: PATH as a tree stream, entries named from its base name
//	put  DIR    stdin: a tree stream extracted under the existing directory DIR
//
// (tree streams, not tars: ferry-init links no tar implementation; the
// host converts).
//
// It exits 0, ArchiveNotFound when PATH (or DIR) does not exist,
// ArchiveNotDir when DIR is not a directory, and 1 otherwise, with one line
// on stderr.
const ArchiveHelperArg = "ferry-archive"

// Archive helper ops and exit codes.
const (
	ArchiveStat = "stat"
	ArchiveGet  = "get"
	ArchivePut  = "put"

	ArchiveNotFound = 2
	ArchiveNotDir   = 3
)

// PathStat describes a path in a machine (Docker's container path stat).
type PathStat struct {
	Name       string      `json:"name"`
	Size       int64       `json:"size"`
	Mode       os.FileMode `json:"mode"`
	Mtime      time.Time   `json:"mtime"`
	LinkTarget string      `json:"linkTarget"`
}
