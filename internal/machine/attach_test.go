package machine

import (
	"bytes"
	"errors"
	"testing"

	"github.com/ferryvm/ferry/internal/api/types"
	"github.com/ferryvm/ferry/internal/errdefs"
	"github.com/ferryvm/ferry/internal/guest"
)

// TestAttachConfigAndExec: Init.Attach reaches the run config, and an
// entrypoint exec is forwarded without a cmd but refuses one.
func TestAttachConfigAndExec(t *testing.T) {
	mc := &types.Machine{ID: "0123456789abcdef", Config: types.Config{Image: "busybox", Init: types.Init{TTY: true, Attach: true, CgroupVersion: guest.CgroupV1}}}
	rc := runConfig(mc, guest.Image{Cmd: []string{"sh"}}, guest.Root{Mode: guest.RootOverlay, Device: "/dev/vda", Scratch: "/dev/vdb"}, nil, nil)
	if !rc.Attach || !rc.TTY || rc.CgroupVersion != guest.CgroupV1 {
		t.Fatalf("run config attach=%v tty=%v cgroup=%q, want both and v1", rc.Attach, rc.TTY, rc.CgroupVersion)
	}
	if err := rc.Validate(); err != nil {
		t.Fatal(err)
	}

	w := newWorld()
	w.hold = true
	m := newManager(t, w, t.TempDir())
	got, err := m.Create(ctx, "", types.CreateRequest{Config: mc.Config})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if code, err := m.Exec(ctx, "", got.ID, types.ExecRequest{Entrypoint: true, TTY: true}, guest.ExecIO{Stdout: &out}); err != nil || code != 7 {
		t.Fatalf("entrypoint exec = %d %v", code, err)
	}
	if _, err := m.Exec(ctx, "", got.ID, types.ExecRequest{Entrypoint: true, Cmd: []string{"sh"}}, guest.ExecIO{Stdout: &out}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("entrypoint exec with cmd: %v", err)
	}
	if _, err := m.Exec(ctx, "", got.ID, types.ExecRequest{}, guest.ExecIO{Stdout: &out}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("exec without cmd: %v", err)
	}
}
