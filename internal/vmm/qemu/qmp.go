package qemu

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"path/filepath"
	"time"

	"github.com/ferryvm/ferry/internal/errdefs"
)

// QMPPath is the QMP monitor socket of a machine whose spec has a
// resizable drive (in the machine's directory; QEMU gets it listening).
func QMPPath(dir string) string { return filepath.Join(dir, "qmp.sock") }

// ResizeDrive tells the QEMU of the machine in dir that drive id's file has
// grown to size bytes (QMP block_resize): the guest's virtio-blk device
// reports the new capacity at once.
func ResizeDrive(ctx context.Context, dir, id string, size int64) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", QMPPath(dir))
	if err != nil {
		return fmt.Errorf("qmp: %w: %w", err, errdefs.ErrUnavailable)
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	} else {
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	}
	r := bufio.NewReader(c)
	// The greeting, then capabilities negotiation, then the command; events
	// in between are skipped.
	if _, err := r.ReadBytes('\n'); err != nil {
		return fmt.Errorf("qmp greeting: %w", err)
	}
	for _, cmd := range []map[string]any{
		{"execute": "qmp_capabilities"},
		{"execute": "block_resize", "arguments": map[string]any{"device": id, "size": size}},
	} {
		b, _ := json.Marshal(cmd)
		if _, err := c.Write(append(b, '\n')); err != nil {
			return fmt.Errorf("qmp: %w", err)
		}
		for {
			line, err := r.ReadBytes('\n')
			if err != nil {
				return fmt.Errorf("qmp: %w", err)
			}
			var reply struct {
				Return *json.RawMessage `json:"return"`
				Error  *struct {
					Class, Desc string
				} `json:"error"`
			}
			if err := json.Unmarshal(line, &reply); err != nil {
				return fmt.Errorf("qmp reply %q: %w", line, err)
			}
			if reply.Error != nil {
				return fmt.Errorf("qmp %s of drive %s: %s: %s", cmd["execute"], id, reply.Error.Class, reply.Error.Desc)
			}
			if reply.Return != nil {
				break
			}
		}
	}
	return nil
}
