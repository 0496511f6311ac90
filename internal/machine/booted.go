package machine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/ferryvm/ferry/internal/api/types"
	"github.com/ferryvm/ferry/internal/errdefs"
	"github.com/ferryvm/ferry/internal/guest"
)

// A started machine has booted once its init takes exec requests: init
// refuses them (guest.ReasonNotBooted, errdefs.ErrNotBooted from Exec)
// until it has started the entrypoint. Docker clients and compose expect a
// container that "started" to take `exec` at once, so they wait for it:
// WaitBooted in-process, Wait(types.WaitBooted) through the API.

// bootPoll is how often a booted wait asks init again.
const bootPoll = 50 * time.Millisecond

// exitSettle is how long a booted wait keeps asking when an exec fails
// otherwise while the machine still reads as started: a VMM that just
// exited is recorded stopped after its control channel has had up to a
// second to report the exit (supervise).
const exitSettle = 3 * time.Second

// notBooted reports a guest failure (a guest.Failure's or a
// guest.RemoteError's reason and message) is init refusing an exec because
// it has not started the entrypoint yet. Inits from before
// guest.ReasonNotBooted said so with ReasonInit and this message; a machine
// started by an older ferry keeps running its init across a host upgrade.
func notBooted(reason, message string) bool {
	return reason == guest.ReasonNotBooted ||
		(reason == guest.ReasonInit && strings.HasSuffix(message, "has not finished booting"))
}

// refusedNotBooted reports a guest exec's outcome is init refusing it as
// not booted (as an error reply or as a failure).
func refusedNotBooted(st guest.ExitStatus, err error) bool {
	var re *guest.RemoteError
	if errors.As(err, &re) {
		return notBooted(re.Reason, re.Message)
	}
	return err == nil && st.Failure != nil && notBooted(st.Failure.Reason, st.Failure.Message)
}

// bootReady asks init of started machine id whether it takes exec requests.
func (m *Manager) bootReady(ctx context.Context, app, id string) error {
	req := types.ExecRequest{Cmd: guest.BuildOp{Op: guest.BuildReady}.Argv(), User: "0"}
	_, err := m.Exec(ctx, app, id, req, guest.ExecIO{Stdout: io.Discard, Stderr: io.Discard})
	return err
}

// WaitBooted returns once a started machine's init takes exec requests,
// bounded by ctx and the boot timeout (ErrUnavailable after it): what
// Docker clients expect of a container that started. A machine that is
// not started fails as Exec does (ErrConflict).
func (m *Manager) WaitBooted(ctx context.Context, app, ref string) error {
	ctx, cancel := context.WithTimeout(ctx, m.opt.BootTimeout)
	defer cancel()
	for {
		err := m.bootReady(ctx, app, ref)
		if !errors.Is(err, errdefs.ErrNotBooted) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("machine %s: not booted after %v: %w", ref, m.opt.BootTimeout, errdefs.ErrUnavailable)
		case <-time.After(bootPoll):
		}
	}
}

// waitBooted is Wait(types.WaitBooted): it returns machine id once its init
// takes exec requests, or at once when the machine is neither starting nor
// started (created, stopped, failed: the state it returns says which; a
// machine whose entrypoint exited has booted). It fails with ErrTimeout
// after timeout, and with the exec's error when exec keeps failing
// otherwise (exitSettle) while the machine stays started.
func (m *Manager) waitBooted(ctx context.Context, id string, timeout time.Duration) (*types.Machine, error) {
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var failing time.Time // since when exec fails otherwise, the machine started
	for {
		mc, err := m.Get("", id)
		if err != nil {
			return nil, err
		}
		switch mc.State {
		case types.StateStarting:
		case types.StateStarted:
			err := m.bootReady(wctx, "", id)
			if err == nil {
				return m.Get("", id)
			}
			switch {
			case errors.Is(err, errdefs.ErrNotBooted):
				failing = time.Time{}
			case failing.IsZero():
				failing = time.Now()
			case time.Since(failing) > exitSettle:
				return nil, fmt.Errorf("wait for machine %s to boot: %w", id, err)
			}
		default:
			return mc, nil
		}
		select {
		case <-wctx.Done():
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, fmt.Errorf("machine %s has not finished booting within %s: %w", id, timeout, errdefs.ErrTimeout)
		case <-time.After(bootPoll):
		}
	}
}
