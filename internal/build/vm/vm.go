// Package vm runs ferry build's RUN steps in micro-VMs: a build.Runner
// whose sessions are ferry machines in the app "ferry-build", booted from
// the stage's root image with ferry-init's build helper as entrypoint
// (guest.BuildOp idle) and driven with exec requests (load, run, diff,
// save). Being machines, they get the lifecycle's durability for free: a
// daemon killed mid-build leaves a machine record that Reap (called by
// build.Builder.Recover at start) destroys, and the reconcile of the
// machine manager kills any VMM left running. `ferry ps` hides them
// (metadata ferry.role=builder) unless asked for all machines.
package vm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/ferryvm/ferry/internal/api/types"
	"github.com/ferryvm/ferry/internal/build"
	"github.com/ferryvm/ferry/internal/errdefs"
	"github.com/ferryvm/ferry/internal/guest"
)

// App is the app builder machines belong to.
const App = "ferry-build"

// Metadata keys of builder machines.
const (
	RoleKey   = "ferry.role"
	RoleValue = "builder"
	BuildKey  = "ferry.build"
)

// The disks of an overlay-root machine, as machine's run config lays them
// out: the read-only base first, the scratch disk second.
const (
	baseDevice    = "/dev/vda"
	scratchDevice = "/dev/vdb"
)

// Machines is what the runner needs from the machine manager.
type Machines interface {
	Create(ctx context.Context, app string, req types.CreateRequest) (*types.Machine, error)
	Exec(ctx context.Context, app, ref string, req types.ExecRequest, stdio guest.ExecIO) (int, error)
	Destroy(ctx context.Context, app, ref string, force bool) error
	List(app string, all bool) []*types.Machine
}

// Options size builder VMs.
type Options struct {
	CPUs     int // default 2
	MemoryMB int // default 1024
}

// Runner starts builder machines.
type Runner struct {
	m Machines
	o Options
}

var _ build.Runner = (*Runner)(nil)

// New returns a runner over m.
func New(m Machines, o Options) *Runner {
	if o.CPUs == 0 {
		o.CPUs = 2
	}
	if o.MemoryMB == 0 {
		o.MemoryMB = 1024
	}
	return &Runner{m: m, o: o}
}

// Start creates and boots a builder types.
func (r *Runner) Start(ctx context.Context, spec build.SessionSpec) (build.Session, error) {
	name := "build-" + spec.Build
	if spec.Stage != "" {
		name += "-" + sanitize(spec.Stage)
	}
	if len(name) > 63 {
		name = name[:63]
	}
	cfg := types.Config{
		Image:    spec.Base.String(),
		Init:     types.Init{Exec: guest.BuildOp{Op: guest.BuildIdle}.Argv(), User: "0:0", WorkingDir: "/"},
		Guest:    types.Guest{CPUs: r.o.CPUs, MemoryMB: r.o.MemoryMB},
		Metadata: map[string]string{RoleKey: RoleValue, BuildKey: spec.Build},
		Hostname: "ferry-build",
		Restart:  types.Restart{Policy: types.RestartNo},
	}
	mc, err := r.m.Create(ctx, App, types.CreateRequest{Name: name, Config: cfg})
	if err != nil {
		return nil, err
	}
	s := &session{r: r, id: mc.ID}
	if err := s.waitReady(ctx); err != nil {
		_ = s.Close(ctx)
		return nil, err
	}
	return s, nil
}

// readyTimeout bounds how long a builder VM may take to boot (TCG is slow).
const readyTimeout = 2 * time.Minute

// waitReady waits until init takes exec requests: it refuses them
// (errdefs.ErrNotBooted) until the entrypoint is started.
func (s *session) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	argv := guest.BuildOp{Op: guest.BuildReady}.Argv()
	for {
		code, err := s.r.m.Exec(ctx, App, s.id, types.ExecRequest{Cmd: argv, User: "0:0"}, guest.ExecIO{Stdout: io.Discard, Stderr: io.Discard})
		switch {
		case err == nil && code == 0:
			return nil
		case err == nil:
			return fmt.Errorf("builder VM: its init has no build helper (exit %d): is ferry-init older than this daemon?", code)
		case !errors.Is(err, errdefs.ErrNotBooted):
			return fmt.Errorf("builder VM: %w", err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("builder VM: not ready after %v: %w", readyTimeout, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Reap destroys builder machines an earlier daemon left behind.
func (r *Runner) Reap(ctx context.Context) error {
	var errs []error
	for _, mc := range r.m.List(App, true) {
		if mc.Config.Metadata[RoleKey] != RoleValue {
			continue
		}
		if err := r.m.Destroy(ctx, App, mc.ID, true); err != nil && !errors.Is(err, errdefs.ErrNotFound) {
			errs = append(errs, fmt.Errorf("reap builder machine %s: %w", mc.ID, err))
		}
	}
	return errors.Join(errs...)
}

func sanitize(s string) string {
	var b strings.Builder
	for _, c := range s {
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' {
			b.WriteRune(c)
		} else {
			b.WriteByte('-')
		}
	}
	return b.String()
}

// session is one builder types.
type session struct {
	r  *Runner
	id string
}

func (s *session) op(op guest.BuildOp) []string {
	op.Base, op.Scratch = baseDevice, scratchDevice
	return op.Argv()
}

// helper runs one helper op; a non-zero status is an error carrying the
// helper's stderr.
func (s *session) helper(ctx context.Context, argv []string, stdin io.Reader, stdout io.Writer) error {
	var stderr bytes.Buffer
	if stdout == nil {
		stdout = io.Discard
	}
	code, err := s.r.m.Exec(ctx, App, s.id, types.ExecRequest{Cmd: argv, User: "0:0", Stdin: stdin != nil},
		guest.ExecIO{Stdin: stdin, Stdout: stdout, Stderr: &limited{b: &stderr, n: 64 << 10}})
	if err != nil {
		return err
	}
	if code != 0 {
		return fmt.Errorf("builder VM: %s: exit %d: %s", argv[2], code, strings.TrimSpace(stderr.String()))
	}
	return nil
}

func (s *session) Load(ctx context.Context, kind, id string, tree io.Reader) error {
	return s.helper(ctx, s.op(guest.BuildOp{Op: guest.BuildLoad, Kind: kind, ID: id}), tree, nil)
}

func (s *session) Run(ctx context.Context, step guest.BuildStep, stdout, stderr io.Writer) (int, error) {
	raw, err := json.Marshal(step)
	if err != nil {
		return 0, err
	}
	return s.r.m.Exec(ctx, App, s.id, types.ExecRequest{Cmd: s.op(guest.BuildOp{Op: guest.BuildRun}), User: "0:0", Stdin: true},
		guest.ExecIO{Stdin: bytes.NewReader(raw), Stdout: stdout, Stderr: stderr})
}

func (s *session) Diff(ctx context.Context, id string, w io.Writer) error {
	return s.helper(ctx, s.op(guest.BuildOp{Op: guest.BuildDiff, ID: id}), nil, w)
}

func (s *session) Save(ctx context.Context, id string, w io.Writer) error {
	return s.helper(ctx, s.op(guest.BuildOp{Op: guest.BuildSave, ID: id}), nil, w)
}

// Close destroys the machine (its VM is killed, its disks removed).
func (s *session) Close(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	return s.r.m.Destroy(ctx, App, s.id, true)
}

// limited keeps the first n bytes written.
type limited struct {
	b *bytes.Buffer
	n int
}

func (l *limited) Write(p []byte) (int, error) {
	if room := l.n - l.b.Len(); room > 0 {
		if len(p) < room {
			room = len(p)
		}
		l.b.Write(p[:room])
	}
	return len(p), nil
}
