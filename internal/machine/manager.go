package machine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/ferryvm/ferry/internal/api/types"
	"github.com/ferryvm/ferry/internal/errdefs"
	"github.com/ferryvm/ferry/internal/guest"
	"github.com/ferryvm/ferry/internal/network"
)

// Deps are the parts of ferry a Manager drives.
type Deps struct {
	Images     Images
	Rootfs     Rootfs
	Network    Network // nil: machines get no network
	Boot       Boot
	Hypervisor Hypervisor
	Volumes    Volumes // nil: machines mount no volumes
	Warm       Warm    // nil: every machine boots cold (warm.go)
}

// Options tune a Manager.
type Options struct {
	// MachinesDir is the parent of the machine directories (paths.Root.Machines()).
	MachinesDir string
	// DefaultVMM is the driver used when a config names none ("" lets the
	// hypervisor choose).
	DefaultVMM string
	// BootTimeout bounds how long a started VMM may take to open its
	// control channel (default 60 s: TCG is slow).
	BootTimeout time.Duration
	// StopTimeout is the default grace between the stop signal and the kill
	// (default 10 s).
	StopTimeout time.Duration
	// BindAllowed, when set, vets each bind mount's host directory for the
	// caller behind ctx (a bind mount is a host privilege).
	BindAllowed BindPolicy
	// TemplatesDir keeps warm-start templates (needed with Deps.Warm).
	TemplatesDir string
	// RestoreTimeout bounds a warm start from the VMM's launch to the
	// guest taking its run config; past it the machine boots cold
	// (default 30 s).
	RestoreTimeout time.Duration
	// Spares keeps, with warm starts, one restored machine of each shape
	// started warm ready for the next machine of it (spare.go).
	Spares bool
	Logger *slog.Logger
}

// Manager owns every machine of a daemon.
type Manager struct {
	st   *store
	deps Deps
	opt  Options
	log  *slog.Logger
	bus  *bus
	warm *warmStarts // nil: warm starts off

	ctx    context.Context // daemon lifetime: supervisors and policy restarts
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	machines map[string]*types.Machine // authoritative copy of the store
	busy     map[string]string         // id → operation holding the machine
	runs     map[string]*run           // id → live VMM
	idle     *sync.Cond                // signalled when a machine stops being busy
}

// New opens the machine store in db. Call Reconcile before serving.
func New(db *bolt.DB, deps Deps, opt Options) (*Manager, error) {
	st, err := openStore(db)
	if err != nil {
		return nil, err
	}
	if opt.MachinesDir == "" {
		return nil, fmt.Errorf("machine manager: no machines dir: %w", errdefs.ErrInvalidArgument)
	}
	if opt.BootTimeout == 0 {
		opt.BootTimeout = 60 * time.Second
	}
	if opt.StopTimeout == 0 {
		opt.StopTimeout = 10 * time.Second
	}
	if opt.RestoreTimeout == 0 {
		opt.RestoreTimeout = 30 * time.Second
	}
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	warm, err := openWarm(deps, opt)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &Manager{st: st, deps: deps, opt: opt, log: opt.Logger, bus: newBus(), warm: warm, ctx: ctx, cancel: cancel,
		machines: map[string]*types.Machine{}, busy: map[string]string{}, runs: map[string]*run{}}
	m.idle = sync.NewCond(&m.mu)
	all, err := st.all()
	if err != nil {
		return nil, err
	}
	for _, mc := range all {
		m.machines[mc.ID] = mc
	}
	return m, nil
}

// Close stops supervising machines (they keep running) and waits for
// background work to end.
func (m *Manager) Close() error {
	m.cancel()
	m.mu.Lock()
	for _, r := range m.runs {
		r.closeControl()
	}
	m.mu.Unlock()
	m.wg.Wait()
	m.closeSpares()
	return nil
}

// internalOps are the daemon's own short operations on a machine; a user
// operation waits for them instead of failing.
var internalOps = map[string]bool{"exit": true, "reconcile": true}

// acquire marks id busy with op, or fails with ErrConflict naming the user
// operation that holds it.
func (m *Manager) acquire(id, op string) (*types.Machine, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for internalOps[m.busy[id]] {
		m.idle.Wait()
	}
	mc, ok := m.machines[id]
	if !ok {
		return nil, fmt.Errorf("machine %s: %w", id, errdefs.ErrNotFound)
	}
	if cur := m.busy[id]; cur != "" {
		return nil, fmt.Errorf("machine %s is busy (%s in progress); retry when it is done: %w", id, cur, errdefs.ErrConflict)
	}
	m.busy[id] = op
	return cloneMachine(mc), nil
}

// acquireWait is acquire for the daemon's own work: it waits its turn.
func (m *Manager) acquireWait(id, op string) (*types.Machine, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for m.busy[id] != "" {
		m.idle.Wait()
	}
	mc, ok := m.machines[id]
	if !ok {
		return nil, false
	}
	m.busy[id] = op
	return cloneMachine(mc), true
}

func (m *Manager) releaseBusy(id string) {
	m.mu.Lock()
	delete(m.busy, id)
	m.mu.Unlock()
	m.idle.Broadcast()
}

// save records mc durably, then in memory, then tells subscribers. This is
// the write that must happen before a state's side effects.
func (m *Manager) save(mc *types.Machine, ev string, status string) error {
	return m.saveVersion(mc, ev, status, "", false)
}

func (m *Manager) saveVersion(mc *types.Machine, ev, status, prevName string, newVersion bool) error {
	now := time.Now().UTC()
	mc.UpdatedAt = now
	var e *types.Event
	if ev != "" {
		e = &types.Event{Type: ev, MachineID: mc.ID, App: mc.App, State: mc.State, Status: status, Time: now}
		if ev == "exit" && mc.LastExit != nil {
			x := *mc.LastExit
			e.Exit = &x
		}
		mc.Events = append([]types.Event{*e}, mc.Events...)
		if len(mc.Events) > maxEvents {
			mc.Events = mc.Events[:maxEvents]
		}
	}
	if err := m.st.put(mc, prevName, newVersion); err != nil {
		return fmt.Errorf("machine %s: record %s: %w", mc.ID, mc.State, err)
	}
	m.mu.Lock()
	m.machines[mc.ID] = cloneMachine(mc)
	m.mu.Unlock()
	if e != nil {
		m.bus.publish(*e)
	}
	return nil
}

// Get returns a machine by ID, unambiguous ID prefix, or name within app.
func (m *Manager) Get(app, ref string) (*types.Machine, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	mc, err := m.lookup(app, ref)
	if err != nil {
		return nil, err
	}
	return m.withHealth(cloneMachine(mc)), nil
}

// lookup resolves ref; m.mu held.
func (m *Manager) lookup(app, ref string) (*types.Machine, error) {
	if ref == "" {
		return nil, fmt.Errorf("machine: empty id or name: %w", errdefs.ErrInvalidArgument)
	}
	if mc, ok := m.machines[ref]; ok && (app == "" || mc.App == app) {
		return mc, nil
	}
	for _, mc := range m.machines {
		if mc.Name == ref && (app == "" || mc.App == app) {
			return mc, nil
		}
	}
	var found []*types.Machine
	for id, mc := range m.machines {
		if strings.HasPrefix(id, ref) && (app == "" || mc.App == app) {
			found = append(found, mc)
		}
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		where := ""
		if app != "" {
			where = " in app " + app
		}
		return nil, fmt.Errorf("no machine %q%s: %w", ref, where, errdefs.ErrNotFound)
	}
	return nil, fmt.Errorf("machine id prefix %q is ambiguous (%d machines): %w", ref, len(found), errdefs.ErrInvalidArgument)
}

// resolve returns the ID for ref.
func (m *Manager) resolve(app, ref string) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	mc, err := m.lookup(app, ref)
	if err != nil {
		return "", err
	}
	return mc.ID, nil
}

// List returns the machines of app ("" for all apps), oldest first. With
// all false, only machines that are not stopped, failed or destroyed.
func (m *Manager) List(app string, all bool) []*types.Machine {
	m.mu.Lock()
	out := make([]*types.Machine, 0, len(m.machines))
	for _, mc := range m.machines {
		if app != "" && mc.App != app {
			continue
		}
		if !all && (mc.State == types.StateStopped || mc.State == types.StateFailed || mc.State == types.StateCreated) {
			continue
		}
		out = append(out, m.withHealth(cloneMachine(mc)))
	}
	m.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		if !out[i].CreatedAt.Equal(out[j].CreatedAt) {
			return out[i].CreatedAt.Before(out[j].CreatedAt)
		}
		return out[i].ID < out[j].ID
	})
	return out
}

// Versions returns the configs a machine has had, oldest first.
func (m *Manager) Versions(app, ref string) ([]types.Config, error) {
	id, err := m.resolve(app, ref)
	if err != nil {
		return nil, err
	}
	return m.st.versions(id)
}

// Subscribe streams events of app ("" all) and machine ("" all).
func (m *Manager) Subscribe(app, id string) (<-chan types.Event, func()) {
	return m.bus.subscribe(func(e types.Event) bool {
		return (app == "" || e.App == app) && (id == "" || e.MachineID == id)
	})
}

// Rename gives a machine a new name, unique in its app.
func (m *Manager) Rename(ctx context.Context, app, ref, name string) (*types.Machine, error) {
	if !ValidName(name) {
		return nil, fmt.Errorf("name %q: use letters, digits, '.', '_' and '-': %w", name, errdefs.ErrInvalidArgument)
	}
	id, err := m.resolve(app, ref)
	if err != nil {
		return nil, err
	}
	mc, err := m.acquire(id, "rename")
	if err != nil {
		return nil, err
	}
	defer m.releaseBusy(id)
	if err := m.claimName(mc.App, name, id); err != nil {
		return nil, err
	}
	prev := mc.Name
	mc.Name = name
	if err := m.saveVersion(mc, "rename", "renamed from "+prev, prev, false); err != nil {
		return nil, err
	}
	if m.deps.Network != nil { // DNS answers for the new name at once
		if err := m.deps.Network.Rename(ctx, id, name); err != nil {
			return nil, fmt.Errorf("rename %s: %w", prev, err)
		}
	}
	return mc, nil
}

// claimName fails when name is taken in app by another machine.
func (m *Manager) claimName(app, name, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, o := range m.machines {
		if o.App == app && o.Name == name && o.ID != id {
			return fmt.Errorf("name %q is already used by machine %s in app %s: %w", name, o.ID, app, errdefs.ErrAlreadyExists)
		}
	}
	return nil
}

// runConfig builds what init gets for mc.
func runConfig(mc *types.Machine, img guest.Image, root guest.Root, att *network.Attachment, mounts []guest.Mount) *guest.RunConfig {
	c := mc.Config
	rc := &guest.RunConfig{
		Version: guest.ConfigVersion,
		ID:      mc.ID,
		Image:   img,
		TTY:     c.Init.TTY,
		Attach:  c.Init.Attach,
		// The console writer (internal/logs) keeps each line's stream.
		ConsoleRecords: guest.RecordVersion,
		Override: guest.Override{
			Exec:       cloneSlice(c.Init.Exec),
			User:       c.Init.User,
			WorkingDir: c.Init.WorkingDir,
		},
		Hostname:      hostname(mc),
		Root:          root,
		CgroupVersion: c.Init.CgroupVersion,
	}
	if c.Init.Entrypoint != nil {
		ep := cloneSlice(c.Init.Entrypoint)
		rc.Override.Entrypoint = &ep
	}
	if c.Init.Cmd != nil {
		cmd := cloneSlice(c.Init.Cmd)
		rc.Override.Cmd = &cmd
	}
	keys := make([]string, 0, len(c.Env))
	for k := range c.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		rc.Override.Env = append(rc.Override.Env, k+"="+c.Env[k])
	}
	rc.Hosts = []guest.HostEntry{{IP: "127.0.0.1", Names: []string{"localhost"}}}
	var nics []network.Endpoint
	if att != nil {
		nics = att.Endpoints
	}
	for i, e := range nics {
		ifc := guest.Interface{Name: fmt.Sprintf("eth%d", i), MAC: e.MAC, MTU: e.MTU}
		for _, a := range e.Addresses() {
			ifc.Addresses = append(ifc.Addresses, a.String())
		}
		if i == 0 { // the primary network has the default routes
			if e.Gateway.IsValid() {
				ifc.Gateway4 = e.Gateway.String()
			}
			if e.Gateway6.IsValid() {
				ifc.Gateway6 = e.Gateway6.String()
			}
		}
		rc.Network = append(rc.Network, ifc)
	}
	if ip := mc.IP(); ip != "" {
		rc.Hosts = append(rc.Hosts, guest.HostEntry{IP: ip, Names: []string{rc.Hostname}})
	}
	for _, h := range c.ExtraHosts {
		name, ip, _ := parseExtraHost(h) // checked by Validate
		rc.Hosts = append(rc.Hosts, guest.HostEntry{IP: ip.String(), Names: []string{name}})
	}
	ns := c.DNS
	if len(ns) == 0 && att != nil {
		ns = att.DNS
	}
	if len(ns) > 0 {
		rc.DNS = &guest.DNS{Nameservers: cloneSlice(ns)}
		if len(c.DNS) == 0 {
			rc.DNS.Search = cloneSlice(att.Search)
		}
	}
	rc.Mounts = mounts
	return rc
}

// hostname is the configured host name, else the name when it is one, else
// the short ID (Docker's default).
func hostname(mc *types.Machine) string {
	if mc.Config.Hostname != "" {
		return mc.Config.Hostname
	}
	if guest.ValidHostname(mc.Name) && len(mc.Name) <= 63 {
		return mc.Name
	}
	return mc.ID[:12]
}

// ports turns the services of a validated config into published ports.
func ports(c types.Config) []network.Port {
	var out []network.Port
	for _, s := range c.Services {
		if len(s.Ports) == 0 {
			out = append(out, network.Port{Protocol: s.Protocol, GuestPort: uint16(s.InternalPort)})
		}
		for _, p := range s.Ports {
			ip, _ := hostIP(p.HostIP) // checked by Validate
			out = append(out, network.Port{Protocol: s.Protocol, HostIP: ip, HostPort: uint16(p.Port), GuestPort: uint16(s.InternalPort)})
		}
	}
	return out
}

// ignoreNotFound drops not-found errors (idempotent releases).
func ignoreNotFound(err error) error {
	if errors.Is(err, errdefs.ErrNotFound) {
		return nil
	}
	return err
}
