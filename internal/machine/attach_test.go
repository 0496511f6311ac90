package machine

import (
	"bytes"
	"errors"
	"sync"
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

// TestStartedMeansExecable: whoever sees a machine's "started" event (the
// Docker API attaches to the entrypoint on it, before the start call has
// returned) can exec in it at once. The check runs inside the publish, so
// it sees exactly the state the event announces.
func TestStartedMeansExecable(t *testing.T) {
	w := newWorld()
	w.hold = true
	m := newManager(t, w, t.TempDir())
	var mu sync.Mutex
	var seen []error
	_, cancel := m.bus.subscribe(func(e types.Event) bool {
		if e.Type == "started" {
			_, _, err := m.running("", e.MachineID)
			mu.Lock()
			seen = append(seen, err)
			mu.Unlock()
		}
		return false
	})
	defer cancel()
	if _, err := m.Create(ctx, "", types.CreateRequest{Config: types.Config{Image: "busybox", Init: types.Init{Attach: true}}}); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 1 || seen[0] != nil {
		t.Fatalf("exec lookup at the started event: %v, want one that finds the run", seen)
	}
}
