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
// (a new generation) when it learns the lease was lost. While the control
// plane is unreachable it retries; the host's machines are not its
// business and keep running.
type Agent struct {
	URL   string // the control plane's base URL
	Token string
	Host  Host
	// Free reports the host's free capacity at each renewal (nil: the
	// registered Host.Free).
	Free   func() Capacity
	Client *http.Client
	Log    *slog.Logger

	mu    sync.Mutex
	lease Lease
}

// Lease is the lease the agent holds now (zero before the first
// registration).
func (a *Agent) Lease() Lease {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.lease
}

// Run registers and renews until ctx ends.
func (a *Agent) Run(ctx context.Context) error {
	if a.Client == nil {
		a.Client = &http.Client{Timeout: 5 * time.Second}
	}
	if a.Log == nil {
		a.Log = slog.Default()
	}
	backoff := 200 * time.Millisecond
	registered := false
	for ctx.Err() == nil {
		var err error
		var l Lease
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
			backoff = min(2*backoff, 5*time.Second)
		} else {
			a.mu.Lock()
			a.lease = l
			a.mu.Unlock()
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
	req, err := http.NewRequestWithContext(ctx, "POST", strings.TrimSuffix(a.URL, "/")+path, bytes.NewReader(b))
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
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	switch {
	case resp.StatusCode == http.StatusConflict:
		return fmt.Errorf("control plane %s: %s: %w", path, strings.TrimSpace(string(body)), errdefs.ErrConflict)
	case resp.StatusCode != http.StatusOK:
		return fmt.Errorf("control plane %s: %s: %s", path, resp.Status, strings.TrimSpace(string(body)))
	}
	return json.Unmarshal(body, out)
}
