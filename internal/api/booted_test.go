package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ferryvm/ferry/internal/api/types"
	"github.com/ferryvm/ferry/internal/errdefs"
	"github.com/ferryvm/ferry/internal/guest"
)

// bootingMachines is a fakeMachines whose machines have not finished
// booting: exec is refused, and a booted wait times out unless boots is
// set.
type bootingMachines struct {
	*fakeMachines
	boots  bool
	waited types.State
}

func (b *bootingMachines) Exec(context.Context, string, string, types.ExecRequest, guest.ExecIO) (int, error) {
	return 0, fmt.Errorf("exec true: exec: the machine has not finished booting: %w", errdefs.ErrNotBooted)
}

func (b *bootingMachines) Wait(_ context.Context, app, ref string, st types.State, timeout time.Duration) (*types.Machine, error) {
	b.waited = st
	m, err := b.get(app, ref)
	if err != nil || b.boots {
		return m, err
	}
	return nil, fmt.Errorf("machine %s has not finished booting within %s: %w", ref, timeout, errdefs.ErrTimeout)
}

// TestNotBootedCrossesTheAPI: an exec refused because the machine has not
// finished booting is 409 with code not_booted, and the client's error is
// errdefs.ErrNotBooted, buffered and streamed; wait?state=booted reaches
// the service as types.WaitBooted.
func TestNotBootedCrossesTheAPI(t *testing.T) {
	bm := &bootingMachines{fakeMachines: newFakeMachines()}
	bm.ms["m1"] = &types.Machine{ID: "m1", App: "web", State: types.StateStarted}
	s := NewServer(nil)
	RegisterMachines(s, bm)
	c := serve(t, s, "")
	ctx := context.Background()

	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest("POST", "/v1/apps/web/machines/m1/exec", strings.NewReader(`{"cmd":["true"]}`)))
	var body errorBody
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || rec.Code != http.StatusConflict || body.Code != "not_booted" {
		t.Fatalf("exec before boot: %d %s (%v), want 409 not_booted", rec.Code, rec.Body, err)
	}
	var res types.ExecResult
	if err := c.Do(ctx, "POST", "/v1/apps/web/machines/m1/exec", types.ExecRequest{Cmd: []string{"true"}}, &res); !errors.Is(err, errdefs.ErrNotBooted) {
		t.Fatalf("buffered exec before boot: %v, want ErrNotBooted", err)
	}
	if _, err := c.ExecMachine(ctx, "web", "m1", types.ExecRequest{Cmd: []string{"true"}}, guest.ExecIO{}); !errors.Is(err, errdefs.ErrNotBooted) {
		t.Fatalf("streamed exec before boot: %v, want ErrNotBooted", err)
	}

	if _, err := c.WaitMachine(ctx, "web", "m1", types.WaitBooted, time.Second); !errors.Is(err, errdefs.ErrTimeout) || bm.waited != types.WaitBooted {
		t.Fatalf("wait booted: %v (service asked for %q), want a timeout for %q", err, bm.waited, types.WaitBooted)
	}
	bm.boots = true
	if m, err := c.WaitMachine(ctx, "web", "m1", types.WaitBooted, time.Second); err != nil || m.ID != "m1" {
		t.Fatalf("wait booted: %+v, %v", m, err)
	}
}
