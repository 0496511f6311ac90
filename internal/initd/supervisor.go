package initd

import (
	"context"
	"fmt"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ferryvm/ferry/internal/guest"
)

// supervisor is the entrypoint's state as the control channel sees it; it
// implements guest.Handler.
type supervisor struct {
	in *Init

	mu       sync.Mutex
	state    string
	entryPID int
	exit     *guest.ExitStatus
	initMS   float64
	done     chan struct{} // closed when exit is set
	acked    chan struct{} // closed when a host acknowledged the exit
	ackOnce  sync.Once
	readyEnv execDefaults

	attachCh     chan attachReq // the host's attach request (attach.go)
	attachClosed bool           // no more attach requests are taken

	warmCh     chan warmReq // the host's warm config (warm.go)
	warmTaken  bool
	rehearsing sync.Mutex // held by a rehearsal (rehearse.go)
}

// execDefaults are what an exec inherits from the entrypoint.
type execDefaults struct {
	cred    Cred
	env     []string
	workdir string
	ready   bool
}

var _ guest.Handler = (*supervisor)(nil)

func newSupervisor(in *Init) *supervisor {
	return &supervisor{in: in, state: guest.StateBooting, done: make(chan struct{}), acked: make(chan struct{}), attachCh: make(chan attachReq, 1), warmCh: make(chan warmReq, 1)}
}

// markReady records init's boot time and the exec defaults.
func (s *supervisor) markReady(in *Init) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.initMS = float64(time.Since(in.start).Microseconds()) / 1000
	s.readyEnv = execDefaults{cred: in.cred, env: in.env, workdir: in.workdir, ready: true}
}

func (s *supervisor) started(pid int) {
	s.mu.Lock()
	s.state, s.entryPID = guest.StateRunning, pid
	s.mu.Unlock()
}

func (s *supervisor) pid() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.entryPID
}

// exited records the final status once.
func (s *supervisor) exited(ex guest.ExitStatus) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.exit != nil {
		return
	}
	s.exit = &ex
	s.state = guest.StateExited
	if ex.Failure != nil {
		s.state = guest.StateFailed
	}
	close(s.done)
}

// awaitAck waits for a host to acknowledge the exit status, at most grace.
func (s *supervisor) awaitAck(grace time.Duration) {
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-s.acked:
	case <-t.C:
	}
}

func (s *supervisor) Status() guest.Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	return guest.Status{State: s.state, PID: s.entryPID, Exit: s.exit, Protocol: guest.ProtocolVersion, InitMS: s.initMS}
}

func (s *supervisor) Wait(ctx context.Context) (guest.ExitStatus, error) {
	select {
	case <-s.done:
		s.mu.Lock()
		defer s.mu.Unlock()
		return *s.exit, nil
	case <-ctx.Done():
		return guest.ExitStatus{}, ctx.Err()
	}
}

func (s *supervisor) Ack() {
	select {
	case <-s.done:
		s.ackOnce.Do(func() { close(s.acked) })
	default:
	}
}

func (s *supervisor) Signal(sig int) error {
	s.mu.Lock()
	pid, state := s.entryPID, s.state
	s.mu.Unlock()
	if state != guest.StateRunning || pid == 0 {
		return &guest.Failure{Reason: guest.ReasonInit, Message: fmt.Sprintf("no running entrypoint (state %s)", state)}
	}
	if err := unix.Kill(pid, unix.Signal(sig)); err != nil {
		return fmt.Errorf("signal %d to pid %d: %w", sig, pid, err)
	}
	return nil
}

func (s *supervisor) defaults() (execDefaults, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.readyEnv.ready {
		return execDefaults{}, &guest.Failure{Reason: guest.ReasonNotBooted, Message: "exec: the machine has not finished booting"}
	}
	return s.readyEnv, nil
}
