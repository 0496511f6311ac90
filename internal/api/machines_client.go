package api

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"time"

	"github.com/ferryvm/ferry/internal/api/types"
	"github.com/ferryvm/ferry/internal/guest"
)

// CreateMachine creates (and unless SkipLaunch, starts) a machine in app.
func (c *Client) CreateMachine(ctx context.Context, app string, req types.CreateRequest) (*types.Machine, error) {
	var m types.Machine
	return &m, c.Do(ctx, "POST", machinePath(app, "", ""), req, &m)
}

// ListMachines lists the machines of app ("" for every app); all includes
// created, stopped and failed ones.
func (c *Client) ListMachines(ctx context.Context, app string, all bool) ([]*types.Machine, error) {
	p := "/v1/machines"
	if app != "" {
		p = machinePath(app, "", "")
	}
	if !all {
		p += "?all=0"
	}
	var out []*types.Machine
	return out, c.Do(ctx, "GET", p, nil, &out)
}

// GetMachine returns a machine by ID, ID prefix or name.
func (c *Client) GetMachine(ctx context.Context, app, id string) (*types.Machine, error) {
	var m types.Machine
	return &m, c.Do(ctx, "GET", machinePath(app, id, ""), nil, &m)
}

// UpdateMachine replaces a machine's config.
func (c *Client) UpdateMachine(ctx context.Context, app, id string, cfg types.Config) (*types.Machine, error) {
	var m types.Machine
	return &m, c.Do(ctx, "POST", machinePath(app, id, ""), types.UpdateRequest{Config: cfg}, &m)
}

// StartMachine starts a machine.
func (c *Client) StartMachine(ctx context.Context, app, id string) (*types.Machine, error) {
	var m types.Machine
	return &m, c.Do(ctx, "POST", machinePath(app, id, "start"), nil, &m)
}

// StopMachine stops a machine.
func (c *Client) StopMachine(ctx context.Context, app, id string, req types.StopRequest) (*types.Machine, error) {
	var m types.Machine
	return &m, c.Do(ctx, "POST", machinePath(app, id, "stop"), req, &m)
}

// RestartMachine restarts a machine.
func (c *Client) RestartMachine(ctx context.Context, app, id string, req types.StopRequest) (*types.Machine, error) {
	var m types.Machine
	return &m, c.Do(ctx, "POST", machinePath(app, id, "restart"), req, &m)
}

// SignalMachine sends a signal to a machine's entrypoint.
func (c *Client) SignalMachine(ctx context.Context, app, id, signal string) error {
	return c.Do(ctx, "POST", machinePath(app, id, "signal"), types.SignalRequest{Signal: signal}, nil)
}

// WaitMachine waits until the machine reaches state (at most timeout).
func (c *Client) WaitMachine(ctx context.Context, app, id string, state types.State, timeout time.Duration) (*types.Machine, error) {
	q := url.Values{"state": {string(state)}}
	if timeout > 0 {
		q.Set("timeout", strconv.FormatFloat(timeout.Seconds(), 'f', -1, 64))
	}
	var m types.Machine
	return &m, c.Do(ctx, "GET", machinePath(app, id, "wait")+"?"+q.Encode(), nil, &m)
}

// DestroyMachine destroys a machine; force kills a running one.
func (c *Client) DestroyMachine(ctx context.Context, app, id string, force bool) error {
	return c.DestroyMachineWithVolumes(ctx, app, id, force, false)
}

// DestroyMachineWithVolumes destroys a machine and, with anonymous, its
// anonymous volumes (rm -v).
func (c *Client) DestroyMachineWithVolumes(ctx context.Context, app, id string, force, anonymous bool) error {
	q := url.Values{}
	if force {
		q.Set("force", "true")
	}
	if anonymous {
		q.Set("volumes", "true")
	}
	p := machinePath(app, id, "")
	if len(q) > 0 {
		p += "?" + q.Encode()
	}
	return c.Do(ctx, "DELETE", p, nil, nil)
}

// RenameMachine renames a machine.
func (c *Client) RenameMachine(ctx context.Context, app, id, name string) (*types.Machine, error) {
	var m types.Machine
	return &m, c.Do(ctx, "POST", machinePath(app, id, "rename"), types.RenameRequest{Name: name}, &m)
}

// MachineVersions returns a machine's config versions, oldest first.
func (c *Client) MachineVersions(ctx context.Context, app, id string) ([]types.Config, error) {
	var out []types.Config
	return out, c.Do(ctx, "GET", machinePath(app, id, "versions"), nil, &out)
}

// MachineStats samples a machine's VMM CPU and memory.
func (c *Client) MachineStats(ctx context.Context, app, id string) (*types.Stats, error) {
	var s types.Stats
	return &s, c.Do(ctx, "GET", machinePath(app, id, "stats"), nil, &s)
}

// LogsOptions select console output.
type LogsOptions struct {
	Follow bool
	Tail   int    // 0: all
	Since  string // RFC 3339, Unix seconds or a duration ago
	Until  string // the same forms: only lines stored before it
}

func (opt LogsOptions) query() url.Values {
	q := url.Values{}
	if opt.Follow {
		q.Set("follow", "1")
	}
	if opt.Tail > 0 {
		q.Set("tail", strconv.Itoa(opt.Tail))
	}
	if opt.Since != "" {
		q.Set("since", opt.Since)
	}
	if opt.Until != "" {
		q.Set("until", opt.Until)
	}
	return q
}

// MachineLogLines streams a machine's log lines to fn as they come, each
// with its stream and the time the machine's log stored it.
func (c *Client) MachineLogLines(ctx context.Context, app, id string, opt LogsOptions, fn func(types.LogLine) error) error {
	q := opt.query()
	q.Set("format", "ndjson")
	err := c.Stream(ctx, "GET", machinePath(app, id, "logs")+"?"+q.Encode(), nil, func(raw json.RawMessage) error {
		var l types.LogLine
		if err := json.Unmarshal(raw, &l); err != nil {
			return fmt.Errorf("logs: %w", err)
		}
		return fn(l)
	})
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// MachineLogs copies a machine's console output to w as it comes, stdout
// and stderr together.
func (c *Client) MachineLogs(ctx context.Context, app, id string, opt LogsOptions, w io.Writer) error {
	q := opt.query()
	p := machinePath(app, id, "logs")
	if len(q) > 0 {
		p += "?" + q.Encode()
	}
	resp, err := c.send(ctx, "GET", p, nil, nil)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	_, err = io.Copy(w, resp.Body)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// Events streams machine events of app ("" every app) and machine ("" every
// machine) to fn until ctx ends or fn fails.
func (c *Client) Events(ctx context.Context, app, id string, fn func(types.Event) error) error {
	q := url.Values{}
	if app != "" {
		q.Set("app", app)
	}
	if id != "" {
		q.Set("machine", id)
	}
	return c.Stream(ctx, "GET", "/v1/events?"+q.Encode(), nil, func(raw json.RawMessage) error {
		var e types.Event
		if err := json.Unmarshal(raw, &e); err != nil {
			return err
		}
		return fn(e)
	})
}

// ExecMachine runs a process in a machine, streaming its stdio, and returns
// its exit code. Events carry terminal resizes (signals travel by
// SignalMachine, not here).
func (c *Client) ExecMachine(ctx context.Context, app, id string, req types.ExecRequest, stdio guest.ExecIO) (int, error) {
	req.Stdin = stdio.Stdin != nil
	conn, err := c.Upgrade(ctx, "POST", machinePath(app, id, "exec"), req)
	if err != nil {
		return 0, err
	}
	defer func() { _ = conn.Close() }()
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	defer stop()
	fw := &frameWriter{w: conn}
	if stdio.Stdin != nil {
		go func() {
			_, _ = io.Copy(fw.stream(FrameStdin), stdio.Stdin)
			_ = fw.write(FrameStdinEOF, nil)
		}()
	}
	if stdio.Events != nil {
		go func() {
			for ev := range stdio.Events {
				if ev.Signal != 0 {
					continue
				}
				if fw.writeJSON(FrameResize, types.WindowSize{Rows: int(ev.Rows), Cols: int(ev.Cols)}) != nil {
					return
				}
			}
		}()
	}
	br := bufio.NewReader(conn)
	stderr := stdio.Stderr
	if stderr == nil {
		stderr = io.Discard
	}
	for {
		typ, p, err := readFrame(br)
		if err != nil {
			if ctx.Err() != nil {
				return 0, ctx.Err()
			}
			return 0, fmt.Errorf("exec stream ended early: %w", err)
		}
		switch typ {
		case FrameStdout:
			_, _ = stdio.Stdout.Write(p)
		case FrameStderr:
			_, _ = stderr.Write(p)
		case FrameExit:
			var x struct {
				ExitCode int `json:"exit_code"`
			}
			if err := json.Unmarshal(p, &x); err != nil {
				return 0, err
			}
			return x.ExitCode, nil
		case FrameError:
			var eb errorBody
			if err := json.Unmarshal(p, &eb); err != nil {
				return 0, err
			}
			return 0, &Error{Code: eb.Code, Message: eb.Error}
		}
	}
}
