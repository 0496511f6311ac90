package qemu

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"

	"github.com/ferryvm/ferry/internal/errdefs"
	"github.com/ferryvm/ferry/internal/vmm"
)

// Spares (vmm.Spec.Spare, docs/warm-starts.md): a machine restored from a
// template before any machine asked for it, running, its guest waiting for
// a run config. Its drives are placeholder files behind named block nodes
// and its NICs hub ports with nothing else on their hubs; Claim gives it a
// machine's drives and TAPs while it runs. The guest sees what a restore
// shows it (disks of the placeholders' sizes, resized on claim; the
// template's NIC, which it re-addresses).

// formatNode and fileNode name a spare drive's raw node and the file node
// under it (gen 0: the placeholder, 1: the machine's file).
func formatNode(drive string) string        { return drive + "-fmt" }
func sinkPort(nic string) string            { return nic + "-sink" }
func fileNode(drive string, gen int) string { return drive + "-file" + strconv.Itoa(gen) }

// Claim makes the spare machine in dir the machine of drives and nics:
// each placeholder drive's file is swapped for the drive's own file
// (blockdev-reopen; a writable drive is then resized so the guest sees
// its size) and each NIC's open TAP joins that NIC's hub. spare is the
// spare's spec (the drives and NICs it was planned with, in the same
// order and number as drives and nics).
func Claim(ctx context.Context, dir string, spare vmm.Spec, drives []vmm.Drive, nics []vmm.NIC) error {
	if !spare.Spare || len(spare.Drives) != len(drives) || len(spare.NICs) != len(nics) {
		return fmt.Errorf("claim %s: %d drives and %d NICs do not fit a spare of %d and %d: %w",
			dir, len(drives), len(nics), len(spare.Drives), len(spare.NICs), errdefs.ErrInvalidArgument)
	}
	q, err := dialQMP(ctx, dir)
	if err != nil {
		return fmt.Errorf("claim %s: %w", dir, err)
	}
	defer q.Close()
	for i, dr := range drives {
		if err := q.swapDrive(spare.Drives[i].ID, dr); err != nil {
			return fmt.Errorf("claim %s: drive %s: %w", dir, dr.ID, err)
		}
	}
	for i, n := range nics {
		if err := q.joinHub(i, spare.NICs[i].ID, n); err != nil {
			return fmt.Errorf("claim %s: nic %s: %w", dir, n.ID, err)
		}
	}
	return nil
}

// swapDrive puts dr's file under the spare drive id's raw node.
func (q *qmpClient) swapDrive(id string, dr vmm.Drive) error {
	modes := []int{os.O_RDONLY}
	if !dr.ReadOnly {
		modes = append(modes, os.O_RDWR) // QEMU reopens a writable file both ways
	}
	set := -1
	for _, mode := range modes {
		f, err := os.OpenFile(dr.Path, mode, 0)
		if err != nil {
			return err
		}
		args := map[string]any{"opaque": dr.Path}
		if set >= 0 {
			args["fdset-id"] = set
		}
		r, err := q.do("add-fd", args, f)
		_ = f.Close()
		if err != nil {
			return err
		}
		var added struct {
			FDSet int `json:"fdset-id"`
		}
		if err := json.Unmarshal(r, &added); err != nil {
			return fmt.Errorf("qmp add-fd: %w", err)
		}
		set = added.FDSet
	}
	file := map[string]any{"driver": "file", "node-name": fileNode(id, 1), "filename": "/dev/fdset/" + strconv.Itoa(set), "read-only": dr.ReadOnly}
	format := map[string]any{"driver": "raw", "node-name": formatNode(id), "file": fileNode(id, 1), "read-only": dr.ReadOnly}
	if !dr.ReadOnly {
		file["discard"], format["discard"] = "unmap", "unmap"
	}
	if dr.Resizable {
		file["locking"] = "off" // as Plan: a resize re-takes locks an fd set cannot
	}
	if _, err := q.do("blockdev-add", file, nil); err != nil {
		return err
	}
	if _, err := q.do("blockdev-reopen", map[string]any{"options": []any{format}}, nil); err != nil {
		return err
	}
	// The placeholder's node went with its last parent (-drive made it).
	if dr.ReadOnly {
		return nil // the guest keeps the placeholder's larger size (PlanRestore)
	}
	fi, err := os.Stat(dr.Path)
	if err != nil {
		return err
	}
	_, err = q.do("block_resize", map[string]any{"node-name": formatNode(id), "size": fi.Size()}, nil)
	return err
}

// joinHub adds n's open TAP to the hub of the spare's i-th NIC, id, and
// removes the hub's sink port.
func (q *qmpClient) joinHub(i int, id string, n vmm.NIC) error {
	if n.File == nil || n.Socket {
		return fmt.Errorf("no open TAP to join: %w", errdefs.ErrInvalidArgument)
	}
	name := "tap-" + id
	if _, err := q.do("getfd", map[string]any{"fdname": name}, n.File); err != nil {
		return err
	}
	if _, err := q.do("netdev_add", map[string]any{"type": "tap", "id": id + "-tap", "fd": name}, nil); err != nil {
		return err
	}
	if _, err := q.do("netdev_add", map[string]any{"type": "hubport", "id": id + "-up", "hubid": i, "netdev": id + "-tap"}, nil); err != nil {
		return err
	}
	// The TAP takes the guest's packets now, with its back-pressure.
	_, err := q.do("netdev_del", map[string]any{"id": sinkPort(id)}, nil)
	return err
}
