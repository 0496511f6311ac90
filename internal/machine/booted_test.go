package machine

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferryvm/ferry/internal/api/types"
	"github.com/ferryvm/ferry/internal/errdefs"
	"github.com/ferryvm/ferry/internal/guest"
)

// refusing returns what init replies to the first n exec requests (all
// when n < 0) before it has started the entrypoint, as an error reply
// (what ferry-init sends) with reason, and the number of requests seen.
func refusing(n int, reason string) (func() error, func() int) {
	var mu sync.Mutex
	calls := 0
	refuse := func() error {
		mu.Lock()
		defer mu.Unlock()
		if calls++; n < 0 || calls <= n {
			return &guest.RemoteError{Reason: reason, Message: "exec: the machine has not finished booting"}
		}
		return nil
	}
	return refuse, func() int { mu.Lock(); defer mu.Unlock(); return calls }
}

// TestExecNotBooted: an exec init refuses as not booted fails with
// errdefs.ErrNotBooted (not a conflict), whether init replies with an
// error or a failure, with ReasonNotBooted or, as inits before it did,
// ReasonInit and the message.
func TestExecNotBooted(t *testing.T) {
	failure := func(reason string) func(guest.ExecRequest, guest.ExecIO) guest.ExitStatus {
		return func(guest.ExecRequest, guest.ExecIO) guest.ExitStatus {
			return guest.ExitStatus{Code: 125, Failure: &guest.Failure{Reason: reason, Message: "exec: the machine has not finished booting"}}
		}
	}
	refuseNew, _ := refusing(-1, guest.ReasonNotBooted)
	refuseOld, _ := refusing(-1, guest.ReasonInit)
	for _, tc := range []struct {
		name   string
		refuse func() error
		run    func(guest.ExecRequest, guest.ExecIO) guest.ExitStatus
	}{
		{name: "error reply", refuse: refuseNew},
		{name: "error reply of an older init", refuse: refuseOld},
		{name: "failure", run: failure(guest.ReasonNotBooted)},
		{name: "failure of an older init", run: failure(guest.ReasonInit)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld()
			w.hold = true
			w.refuse, w.run = tc.refuse, tc.run
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
	refuse, calls := refusing(3, guest.ReasonNotBooted)
	w.refuse = refuse
	m := newManager(t, w, t.TempDir())
	mc, err := m.Create(ctx, "", types.CreateRequest{Config: types.Config{Image: "busybox"}})
	if err != nil {
		t.Fatal(err)
	}
	got, err := m.Wait(ctx, "", mc.ID, types.WaitBooted, time.Minute)
	if err != nil || got.State != types.StateStarted || calls() != 4 {
		t.Fatalf("wait booted: %+v, %v after %d execs; want started after the 4th", got, err, calls())
	}
	if _, err := m.Exec(ctx, "", mc.ID, types.ExecRequest{Cmd: []string{"true"}}, guest.ExecIO{Stdout: io.Discard, Stderr: io.Discard}); err != nil {
		t.Fatalf("exec after the booted wait: %v", err)
	}

	if _, err := m.Stop(ctx, "", mc.ID, StopOptions{}); err != nil {
		t.Fatal(err)
	}
	n := calls()
	if got, err := m.Wait(ctx, "", mc.ID, types.WaitBooted, time.Minute); err != nil || got.State != types.StateStopped || calls() != n {
		t.Fatalf("wait booted on a stopped machine: %+v, %v (%d execs); want it at once", got, err, calls()-n)
	}

	w.refuse, _ = refusing(-1, guest.ReasonNotBooted)
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

// TestWaitBootedExecFails: an exec that keeps failing otherwise while the
// machine stays started (its control channel is gone) fails the booted
// wait with that error, not a timeout.
func TestWaitBootedExecFails(t *testing.T) {
	w := newWorld()
	w.hold = true
	w.refuse = func() error { return &guest.RemoteError{Message: "the control channel broke"} }
	m := newManager(t, w, t.TempDir())
	mc, err := m.Create(ctx, "", types.CreateRequest{Config: types.Config{Image: "busybox"}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = m.Wait(ctx, "", mc.ID, types.WaitBooted, time.Minute)
	if err == nil || errors.Is(err, errdefs.ErrTimeout) || !strings.Contains(err.Error(), "the control channel broke") {
		t.Fatalf("wait booted with exec failing: %v, want the exec's error", err)
	}
}
