package guest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"syscall"
	"time"
)

// Run runs req in the guest connected to stdio and returns its exit status
// once it has ended and its output is copied: stdin is copied in (its EOF
// closes the process's stdin), Events deliver tty resizes and signals,
// stdout and stderr (nil: discarded) are copied out. A status with Failure
// set means init could not start the process. ctx bounds the whole run;
// when it ends the guest kills the process.
func (c *Client) Run(ctx context.Context, req ExecRequest, stdio ExecIO) (ExitStatus, error) {
	req.Stdin = stdio.Stdin != nil
	p, err := c.Exec(ctx, req)
	if err != nil {
		return ExitStatus{}, err
	}
	defer func() { _ = p.Close() }()
	done := make(chan struct{})
	defer close(done)
	if stdio.Stdin != nil {
		go func() {
			w := p.Stdin()
			_, _ = io.Copy(w, stdio.Stdin)
			_ = w.Close()
		}()
	}
	if stdio.Events != nil {
		go func() {
			for {
				select {
				case ev, ok := <-stdio.Events:
					if !ok {
						return
					}
					if ev.Signal != 0 {
						_ = p.Signal(syscall.Signal(ev.Signal))
					} else {
						_ = p.Resize(ev.Rows, ev.Cols)
					}
				case <-done:
					return
				}
			}
		}()
	}
	stdout, stderr := orDiscard(stdio.Stdout), orDiscard(stdio.Stderr)
	copied := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(stdout, p.Stdout); copied <- struct{}{} }()
	go func() { _, _ = io.Copy(stderr, p.Stderr); copied <- struct{}{} }()
	st, err := p.Wait(ctx)
	if err != nil {
		return ExitStatus{}, err
	}
	<-copied
	<-copied
	return st, nil
}

func orDiscard(w io.Writer) io.Writer {
	if w == nil {
		return io.Discard
	}
	return w
}

// BootWait bounds how long SignalEntrypoint waits for init to start the
// entrypoint.
const BootWait = time.Minute

// ErrBooting is returned by SignalEntrypoint when the entrypoint has not
// started within BootWait.
var ErrBooting = errors.New("the guest is still booting")

// SignalEntrypoint delivers sig to the entrypoint, first waiting (at most
// BootWait, polling init's status) for init to have started it: a signal
// to a machine that is still booting is meant for its entrypoint, not
// refused.
func (c *Client) SignalEntrypoint(ctx context.Context, sig syscall.Signal) error {
	wctx, cancel := context.WithTimeout(ctx, BootWait)
	defer cancel()
	for {
		st, err := c.Status(wctx)
		if err != nil {
			return err
		}
		if st.State != StateBooting {
			break
		}
		select {
		case <-wctx.Done():
			return fmt.Errorf("signal: %w", ErrBooting)
		case <-time.After(50 * time.Millisecond):
		}
	}
	return c.Signal(ctx, sig)
}
