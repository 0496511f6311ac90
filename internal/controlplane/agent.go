package controlplane

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/ferryvm/ferry/internal/errdefs"
)

// Agent is a host's side of the control plane: it registers the host,
// renews its lease every third of the lease's TTL, and registers again
// (a new generation) when it learns the lease was lost. After each
// registration and renewal it converges the host's machines to the
// desired set the control plane gives it (converge.go). While the control
// plane is unreachable it retries, and the host's machines keep running
// as they are (their restart policies still apply, on the host).
type Agent struct {
	URL   string // the control plane's base URL
	Token string
	Host  Host
	// Free reports the host's free capacity at each renewal (nil: the
	// registered Host.Free).
	Free   func() Capacity
	Client *http.Client
	Log    *slog.Logger
	// Machines is the host's machine manager the agent converges (nil:
	// it only registers and renews).
	Machines LocalMachines

	mu    sync.Mutex
	lease Lease
	// until is when the lease expires by this host's clock: the TTL
	// counted from when the request that obtained it was sent.
	until time.Time
}

// leaseLive reports whether the agent's lease has not expired by its own
// clock; a host starts nothing without one.
func (a *Agent) leaseLive() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return time.Now().Before(a.until)
}

// Lease is the lease the agent holds now (zero before the first
// registration).
func (a *Agent) Lease() Lease {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.lease
}

// RetryMax is the longest an agent waits between two attempts to reach
// the control plane: a host whose control plane returns renews (or
// registers again) within it.
const RetryMax = 5 * time.Second

// Run registers and renews until ctx ends.
func (a *Agent) Run(ctx context.Context) error {
	if a.Client == nil {
		a.Client = &http.Client{Timeout: 5 * time.Second}
	}
	if a.Log == nil {
		a.Log = slog.Default()
	}
	kick := make(chan struct{}, 1)
	if a.Machines != nil {
		cctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); a.convergeLoop(cctx, kick) }()
		defer func() { cancel(); <-done }()
	}
	backoff := 200 * time.Millisecond
	registered := false
	for ctx.Err() == nil {
		var err error
		var l Lease
		sent := time.Now()
		if !registered {
			err = a.call(ctx, "/v1/hosts", a.Host, &l)
			if err == nil {
				registered = true
				a.Log.Info("joined the control plane", "url", a.URL, "host", a.Host.ID, "generation", l.Generation, "ttl", time.Duration(l.TTL))
			}
		} else {
			free := a.Host.Free
			if a.Free != nil {
				free = a.Free()
			}
			err = a.call(ctx, "/v1/hosts/"+a.Host.ID+"/lease", RenewRequest{Generation: a.Lease().Generation, Free: free}, &l)
			if errors.Is(err, errdefs.ErrConflict) {
				a.Log.Warn("control plane lease lost; registering again", "host", a.Host.ID, "err", err)
				registered = false
				continue
			}
		}
		wait := backoff
		if err != nil {
			if ctx.Err() == nil {
				a.Log.Warn("control plane unreachable; retrying", "url", a.URL, "err", err)
			}
			backoff = min(2*backoff, RetryMax)
		} else {
			a.mu.Lock()
			a.lease, a.until = l, sent.Add(time.Duration(l.TTL))
			a.mu.Unlock()
			select {
			case kick <- struct{}{}:
			default:
			}
			backoff = 200 * time.Millisecond
			wait = max(time.Duration(l.TTL)/3, 100*time.Millisecond)
		}
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
	}
	return nil
}

func (a *Agent) call(ctx context.Context, path string, in, out any) error {
	b, err := json.Marshal(in)
	if err != nil {
		return err
	}
	return a.do(ctx, "POST", path, bytes.NewReader(b), out)
}

func (a *Agent) get(ctx context.Context, path string, out any) error {
	return a.do(ctx, "GET", path, nil, out)
}

func (a *Agent) do(ctx context.Context, method, path string, body io.Reader, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(a.URL, "/")+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+a.Token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := a.Client.Do(req)
	if err != nil {
		return fmt.Errorf("control plane %s: %w: %w", path, err, errdefs.ErrUnavailable)
	}
	defer func() { _ = resp.Body.Close() }()
	reply, _ := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	switch {
	case resp.StatusCode == http.StatusConflict:
		return fmt.Errorf("control plane %s: %s: %w", path, strings.TrimSpace(string(reply)), errdefs.ErrConflict)
	case resp.StatusCode != http.StatusOK:
		return fmt.Errorf("control plane %s: %s: %s", path, resp.Status, strings.TrimSpace(string(reply)))
	}
	return json.Unmarshal(reply, out)
}
