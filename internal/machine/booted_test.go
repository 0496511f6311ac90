package machine

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/ferryvm/ferry/internal/api/types"
	"github.com/ferryvm/ferry/internal/errdefs"
	"github.com/ferryvm/ferry/internal/guest"
)

// refusing returns a guest exec handler that refuses the first n requests
// as init does before it has started the entrypoint (with reason), and
// the number of requests it saw.
func refusing(n int, reason string) (func(guest.ExecRequest, guest.ExecIO) guest.ExitStatus, func() int) {
	var mu sync.Mutex
	calls := 0
	run := func(guest.ExecRequest, guest.ExecIO) guest.ExitStatus {
		mu.Lock()
		defer mu.Unlock()
		if calls++; n < 0 || calls <= n {
			return guest.ExitStatus{Code: 125, Failure: &guest.Failure{Reason: reason, Message: "exec: the machine has not finished booting"}}
		}
		return guest.ExitStatus{}
	}
	return run, func() int { mu.Lock(); defer mu.Unlock(); return calls }
}

// TestExecNotBooted: an exec init refuses as not booted fails with
// errdefs.ErrNotBooted (not a conflict), from inits that say so with
// ReasonNotBooted and from older ones that said it with ReasonInit.
func TestExecNotBooted(t *testing.T) {
	for _, reason := range []string{guest.ReasonNotBooted, guest.ReasonInit} {
		t.Run(reason, func(t *testing.T) {
			w := newWorld()
			w.hold = true
			w.run, _ = refusing(-1, reason)
			m := newManager(t, w, t.TempDir())
			mc, err := m.Create(ctx, "", types.CreateRequest{Config: types.Config{Image: "busybox"}})
			if err != nil {
				t.Fatal(err)
			}
			_, err = m.Exec(ctx, "", mc.ID, types.ExecRequest{Cmd: []string{"true"}}, guest.ExecIO{})
			if !errors.Is(err, errdefs.ErrNotBooted) || errors.Is(err, errdefs.ErrConflict) || errdefs.Code(err) != "not_booted" {
				t.Fatalf("exec before boot: %v (code %s), want ErrNotBooted", err, errdefs.Code(err))
			}
		})
	}
}

// TestWaitBooted: Wait(WaitBooted) returns once init takes exec requests,
// at once for a machine that is not running, and with ErrTimeout when init
// never does.
func TestWaitBooted(t *testing.T) {
	w := newWorld()
	w.hold = true
	run, calls := refusing(3, guest.ReasonNotBooted)
	w.run = run
	m := newManager(t, w, t.TempDir())
	mc, err := m.Create(ctx, "", types.CreateRequest{Config: types.Config{Image: "busybox"}})
	if err != nil {
		t.Fatal(err)
	}
	got, err := m.Wait(ctx, "", mc.ID, types.WaitBooted, time.Minute)
	if err != nil || got.State != types.StateStarted || calls() != 4 {
		t.Fatalf("wait booted: %+v, %v after %d execs; want started after the 4th", got, err, calls())
	}
	if _, err := m.Exec(ctx, "", mc.ID, types.ExecRequest{Cmd: []string{"true"}}, guest.ExecIO{}); err != nil {
		t.Fatalf("exec after the booted wait: %v", err)
	}

	if _, err := m.Stop(ctx, "", mc.ID, StopOptions{}); err != nil {
		t.Fatal(err)
	}
	n := calls()
	if got, err := m.Wait(ctx, "", mc.ID, types.WaitBooted, time.Minute); err != nil || got.State != types.StateStopped || calls() != n {
		t.Fatalf("wait booted on a stopped machine: %+v, %v (%d execs); want it at once", got, err, calls()-n)
	}

	w.run, _ = refusing(-1, guest.ReasonNotBooted)
	never, err := m.Create(ctx, "", types.CreateRequest{Config: types.Config{Image: "busybox"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Wait(ctx, "", never.ID, types.WaitBooted, 200*time.Millisecond); !errors.Is(err, errdefs.ErrTimeout) {
		t.Fatalf("wait booted on a machine that never boots: %v, want ErrTimeout", err)
	}
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if err := m.WaitBooted(short, "", never.ID); !errors.Is(err, errdefs.ErrUnavailable) {
		t.Fatalf("WaitBooted on a machine that never boots: %v, want ErrUnavailable", err)
	}
}
