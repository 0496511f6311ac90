package qemu

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"syscall"
	"time"

	"github.com/ferryvm/ferry/internal/errdefs"
)

// qmpClient is one QMP session: commands in order, events skipped, a file
// descriptor sent along with a command when asked (getfd).
type qmpClient struct {
	c *net.UnixConn
	r *bufio.Reader
}

// dialQMP connects to the QMP monitor of the machine in dir and negotiates
// capabilities. QEMU creates the socket before it loads an incoming
// migration, so a restore can be followed while it loads.
func dialQMP(ctx context.Context, dir string) (*qmpClient, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", QMPPath(dir))
	if err != nil {
		return nil, fmt.Errorf("qmp: %w: %w", err, errdefs.ErrUnavailable)
	}
	q := &qmpClient{c: c.(*net.UnixConn), r: bufio.NewReader(c)}
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	if _, err := q.r.ReadBytes('\n'); err != nil {
		c.Close()
		return nil, fmt.Errorf("qmp greeting: %w", err)
	}
	if _, err := q.do("qmp_capabilities", nil, nil); err != nil {
		c.Close()
		return nil, err
	}
	return q, nil
}

func (q *qmpClient) Close() error { return q.c.Close() }

// do runs one command and returns its "return" value; with f, f's
// descriptor travels with the command (SCM_RIGHTS), as getfd wants.
func (q *qmpClient) do(cmd string, args any, f *os.File) (json.RawMessage, error) {
	m := map[string]any{"execute": cmd}
	if args != nil {
		m["arguments"] = args
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	b = append(b, '\n')
	if f != nil {
		_, _, err = q.c.WriteMsgUnix(b, syscall.UnixRights(int(f.Fd())), nil)
	} else {
		_, err = q.c.Write(b)
	}
	if err != nil {
		return nil, fmt.Errorf("qmp %s: %w", cmd, err)
	}
	for {
		line, err := q.r.ReadBytes('\n')
		if err != nil {
			return nil, fmt.Errorf("qmp %s: %w", cmd, err)
		}
		var reply struct {
			Return json.RawMessage `json:"return"`
			Error  *struct {
				Class, Desc string
			} `json:"error"`
		}
		if err := json.Unmarshal(line, &reply); err != nil {
			return nil, fmt.Errorf("qmp %s: reply %q: %w", cmd, line, err)
		}
		if reply.Error != nil {
			return nil, fmt.Errorf("qmp %s: %s: %s", cmd, reply.Error.Class, reply.Error.Desc)
		}
		if reply.Return != nil {
			return reply.Return, nil
		}
	}
}

// ignoreShared turns on the x-ignore-shared migration capability.
func (q *qmpClient) ignoreShared() error {
	_, err := q.do("migrate-set-capabilities", map[string]any{
		"capabilities": []map[string]any{{"capability": ignoreShared, "state": true}},
	}, nil)
	return err
}

// status is query-status's run state ("running", "paused", "inmigrate",
// "postmigrate", ...).
func (q *qmpClient) status() (string, error) {
	r, err := q.do("query-status", nil, nil)
	if err != nil {
		return "", err
	}
	var st struct {
		Status string `json:"status"`
	}
	if err := json.Unmarshal(r, &st); err != nil {
		return "", fmt.Errorf("qmp query-status: %w", err)
	}
	return st.Status, nil
}

// poll calls f every interval until it reports done or ctx ends.
func poll(ctx context.Context, interval time.Duration, f func() (bool, error)) error {
	for {
		done, err := f()
		if err != nil || done {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: %w", ctx.Err(), errdefs.ErrTimeout)
		case <-time.After(interval):
		}
	}
}
