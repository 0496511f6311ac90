package vm

import (
	"context"
	"fmt"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ferryvm/ferry/internal/api/types"
	"github.com/ferryvm/ferry/internal/build"
	"github.com/ferryvm/ferry/internal/errdefs"
	"github.com/ferryvm/ferry/internal/guest"
)

// fakeMachines records what the runner asks of the machine manager.
type fakeMachines struct {
	created   []types.CreateRequest
	apps      []string
	execs     [][]string
	destroyed []string
	booting   int // exec attempts refused before init is ready
	list      []*types.Machine
}

func (f *fakeMachines) Create(ctx context.Context, app string, req types.CreateRequest) (*types.Machine, error) {
	f.apps = append(f.apps, app)
	f.created = append(f.created, req)
	return &types.Machine{ID: fmt.Sprintf("m%d", len(f.created)), Config: req.Config}, nil
}

func (f *fakeMachines) Exec(ctx context.Context, app, ref string, req types.ExecRequest, stdio guest.ExecIO) (int, error) {
	f.execs = append(f.execs, req.Cmd)
	if f.booting > 0 {
		f.booting--
		return 0, fmt.Errorf("machine %s: exec: the machine has not finished booting: %w", ref, errdefs.ErrNotBooted)
	}
	if req.Cmd[2] == guest.BuildDiff {
		fmt.Fprint(stdio.Stdout, "tree")
	}
	return 0, nil
}

func (f *fakeMachines) Destroy(ctx context.Context, app, ref string, force bool) error {
	f.destroyed = append(f.destroyed, app+"/"+ref)
	return nil
}

func (f *fakeMachines) List(app string, all bool) []*types.Machine { return f.list }

func TestSessionLifecycle(t *testing.T) {
	f := &fakeMachines{booting: 3}
	r := New(f, Options{})
	base := v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("a", 64)}
	s, err := r.Start(context.Background(), build.SessionSpec{Build: "b1", Stage: "my stage", Base: base})
	if err != nil {
		t.Fatal(err)
	}
	c := f.created[0]
	if f.apps[0] != App || c.Name != "build-b1-my-stage" || c.Config.Image != base.String() ||
		c.Config.Metadata[RoleKey] != RoleValue || c.Config.Metadata[BuildKey] != "b1" ||
		strings.Join(c.Config.Init.Exec, " ") != "/proc/1/exe ferry-build idle" || c.Config.Init.User != "0:0" {
		t.Errorf("create = %s %+v", f.apps[0], c)
	}
	if len(f.execs) != 4 {
		t.Errorf("%d ready probes, want 4 (3 refused while booting)", len(f.execs))
	}
	var out strings.Builder
	if err := s.Diff(context.Background(), "l3", &out); err != nil || out.String() != "tree" {
		t.Errorf("diff = %q, %v", out.String(), err)
	}
	if last := strings.Join(f.execs[len(f.execs)-1], " "); last != "/proc/1/exe ferry-build diff --base=/dev/vda --scratch=/dev/vdb l3" {
		t.Errorf("diff argv = %s", last)
	}
	if err := s.Close(context.Background()); err != nil || len(f.destroyed) != 1 || f.destroyed[0] != App+"/m1" {
		t.Errorf("close destroyed %v, %v", f.destroyed, err)
	}
}

func TestReapOnlyBuilders(t *testing.T) {
	f := &fakeMachines{list: []*types.Machine{
		{ID: "b", Config: types.Config{Metadata: map[string]string{RoleKey: RoleValue}}},
		{ID: "other", Config: types.Config{}},
	}}
	if err := New(f, Options{}).Reap(context.Background()); err != nil {
		t.Fatal(err)
	}
	if strings.Join(f.destroyed, " ") != App+"/b" {
		t.Errorf("reaped %v", f.destroyed)
	}
}
