package compose

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferryvm/ferry/internal/api/types"
	"github.com/ferryvm/ferry/internal/errdefs"
	"github.com/ferryvm/ferry/internal/guest"
	"github.com/ferryvm/ferry/internal/network"
)

// fakeClient is an in-memory daemon recording the order of creates.
type fakeClient struct {
	mu             sync.Mutex
	seq            int
	machines       map[string]*types.Machine // by ID
	nets           map[string]*network.Network
	created        []string // machine names in create order
	removed        []string
	volumesRemoved []string
	delay          time.Duration
	gate           chan struct{} // when set, creates block until it closes
	inFlight       atomic.Int32
	// health, when set, is the health a machine named by the key reports
	// on its n-th GetMachine (n from 1).
	health func(name string, n int) *types.Health
	gets   map[string]int
	// A machine refuses exec requests (errdefs.ErrNotBooted) until a
	// booted wait returned it; one in neverBoots never boots (the wait
	// times out).
	booted     map[string]bool
	neverBoots map[string]bool
	execs      map[string]int
	events     []string // "stop NAME", "start NAME", "destroy NAME", "booted NAME" in order
	// exitCodes are the exit statuses machines stop with (by name).
	exitCodes map[string]int
	stops     map[string]types.StopRequest // the last stop request by machine
	// failCreate makes the create of these machines fail.
	failCreate map[string]bool
}

func (f *fakeClient) GetMachine(ctx context.Context, app, id string) (*types.Machine, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, m := range f.machines {
		if m.App == app && (m.ID == id || m.Name == id) {
			c := *m
			if f.health != nil {
				if f.gets == nil {
					f.gets = map[string]int{}
				}
				f.gets[m.Name]++
				c.Health = f.health(m.Name, f.gets[m.Name])
			}
			return &c, nil
		}
	}
	return nil, fmt.Errorf("machine %s: %w", id, errdefs.ErrNotFound)
}

func newFake() *fakeClient {
	return &fakeClient{machines: map[string]*types.Machine{}, nets: map[string]*network.Network{}}
}

func (f *fakeClient) CreateMachine(ctx context.Context, app string, req types.CreateRequest) (*types.Machine, error) {
	time.Sleep(f.delay)
	if f.gate != nil {
		f.inFlight.Add(1)
		select {
		case <-f.gate:
		case <-time.After(10 * time.Second):
			return nil, fmt.Errorf("creates were not concurrent: %w", errdefs.ErrUnavailable)
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failCreate[req.Name] {
		return nil, fmt.Errorf("create %s: port 8080 is in use: %w", req.Name, errdefs.ErrConflict)
	}
	for _, m := range f.machines {
		if m.App == app && m.Name == req.Name {
			return nil, fmt.Errorf("name %s: %w", req.Name, errdefs.ErrAlreadyExists)
		}
	}
	f.seq++
	m := &types.Machine{ID: fmt.Sprint("m", f.seq), Name: req.Name, App: app, State: types.StateStarted, Config: req.Config}
	f.machines[m.ID] = m
	f.created = append(f.created, req.Name)
	return m, nil
}

func (f *fakeClient) ListMachines(ctx context.Context, app string, all bool) ([]*types.Machine, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*types.Machine
	for _, m := range f.machines {
		if m.App == app {
			c := *m
			out = append(out, &c)
		}
	}
	return out, nil
}

// find is the machine id names (by ID or name); f.mu held.
func (f *fakeClient) find(id string) (*types.Machine, error) {
	for _, m := range f.machines {
		if m.ID == id || m.Name == id {
			return m, nil
		}
	}
	return nil, fmt.Errorf("machine %s: %w", id, errdefs.ErrNotFound)
}

func (f *fakeClient) StartMachine(ctx context.Context, app, id string) (*types.Machine, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	m, err := f.find(id)
	if err != nil {
		return nil, err
	}
	m.State = types.StateStarted
	f.events = append(f.events, "start "+m.Name)
	return m, nil
}

func (f *fakeClient) StopMachine(ctx context.Context, app, id string, req types.StopRequest) (*types.Machine, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	m, err := f.find(id)
	if err != nil {
		return nil, err
	}
	m.State = types.StateStopped
	f.events = append(f.events, "stop "+m.Name)
	if f.stops == nil {
		f.stops = map[string]types.StopRequest{}
	}
	f.stops[m.Name] = req
	return m, nil
}

func (f *fakeClient) WaitMachine(ctx context.Context, app, id string, state types.State, timeout time.Duration) (*types.Machine, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	m, err := f.find(id)
	if err != nil {
		return nil, err
	}
	if state == types.WaitBooted {
		if f.neverBoots[m.Name] {
			return nil, fmt.Errorf("machine %s has not finished booting within %s: %w", m.ID, timeout, errdefs.ErrTimeout)
		}
		if f.booted == nil {
			f.booted = map[string]bool{}
		}
		f.booted[m.Name] = true
		f.events = append(f.events, "booted "+m.Name)
		c := *m
		return &c, nil
	}
	m.State = state
	m.LastExit = &types.Exit{ExitCode: f.exitCodes[m.Name]}
	return m, nil
}

func (f *fakeClient) DestroyMachineWithVolumes(ctx context.Context, app, id string, force, anonymous bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	m, ok := f.machines[id]
	if !ok {
		return errdefs.ErrNotFound
	}
	f.removed = append(f.removed, m.Name)
	f.events = append(f.events, "destroy "+m.Name)
	delete(f.machines, id)
	return nil
}

func (f *fakeClient) CreateNetwork(ctx context.Context, req network.CreateRequest) (*network.Network, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := &network.Network{ID: "n" + req.Name, Name: req.Name, Labels: req.Labels}
	f.nets[n.ID] = n
	return n, nil
}

func (f *fakeClient) ListNetworks(ctx context.Context, o network.ListOptions) ([]*network.Network, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*network.Network
	for _, n := range f.nets {
		if n.Labels[LabelProject] == o.Labels[LabelProject] {
			out = append(out, n)
		}
	}
	return out, nil
}

func (f *fakeClient) RemoveNetwork(ctx context.Context, ref string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.nets, ref)
	return nil
}

func (f *fakeClient) RemoveVolume(ctx context.Context, app, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.volumesRemoved = append(f.volumesRemoved, id)
	return nil
}

func (f *fakeClient) ExecMachine(ctx context.Context, app, id string, req types.ExecRequest, stdio guest.ExecIO) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.execs == nil {
		f.execs = map[string]int{}
	}
	f.execs[id]++
	if !f.booted[id] {
		return 0, fmt.Errorf("exec: %w", errdefs.ErrNotBooted)
	}
	return 0, nil
}
