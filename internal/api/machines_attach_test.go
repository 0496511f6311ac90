package api

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/ferryvm/ferry/internal/api/types"
	"github.com/ferryvm/ferry/internal/errdefs"
	"github.com/ferryvm/ferry/internal/guest"
)

// TestExecEntrypointNeedsNoCmd: an attach to the entrypoint (exec with
// entrypoint set) streams without a cmd; a plain exec still needs one.
func TestExecEntrypointNeedsNoCmd(t *testing.T) {
	fm := newFakeMachines()
	s := NewServer(nil)
	RegisterMachines(s, fm)
	c := serve(t, s, "")
	ctx := context.Background()
	if _, err := c.CreateMachine(ctx, "web", types.CreateRequest{Config: types.Config{Image: "busybox", Init: types.Init{Attach: true}}}); err != nil {
		t.Fatal(err)
	}
	fm.ms["m1"].State = types.StateStarted
	var out, errb bytes.Buffer
	code, err := c.ExecMachine(ctx, "web", "m1", types.ExecRequest{Entrypoint: true}, guest.ExecIO{Stdout: &out, Stderr: &errb})
	if err != nil || code != 0 || errb.String() != "err:" {
		t.Fatalf("entrypoint exec = %d %q %v", code, errb.String(), err)
	}
	if _, err := c.ExecMachine(ctx, "web", "m1", types.ExecRequest{}, guest.ExecIO{Stdout: &out}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("exec without cmd: %v", err)
	}
}
