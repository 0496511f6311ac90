package dockerapi

import (
	"context"
	"io"
	"syscall"
	"time"

	"github.com/ferryvm/ferry/internal/api"
	"github.com/ferryvm/ferry/internal/api/types"
	"github.com/ferryvm/ferry/internal/build"
	"github.com/ferryvm/ferry/internal/guest"
	"github.com/ferryvm/ferry/internal/logs"
	"github.com/ferryvm/ferry/internal/machine"
)

// Machines is what containers are (a *machine.Manager).
type Machines interface {
	Create(ctx context.Context, app string, req types.CreateRequest) (*types.Machine, error)
	Get(app, ref string) (*types.Machine, error)
	List(app string, all bool) []*types.Machine
	Start(ctx context.Context, app, ref string) (*types.Machine, error)
	Stop(ctx context.Context, app, ref string, opt machine.StopOptions) (*types.Machine, error)
	Restart(ctx context.Context, app, ref string, opt machine.StopOptions) (*types.Machine, error)
	Signal(ctx context.Context, app, ref string, sig syscall.Signal) error
	Destroy(ctx context.Context, app, ref string, force bool) error
	DestroyWithVolumes(ctx context.Context, app, ref string, force, anonymous bool) error
	Rename(ctx context.Context, app, ref, name string) (*types.Machine, error)
	Exec(ctx context.Context, app, ref string, req types.ExecRequest, stdio guest.ExecIO) (int, error)
	Logs(ctx context.Context, app, ref string, opt machine.LogOptions, fn func(logs.Entry) error) error
	Subscribe(app, id string) (<-chan types.Event, func())
	Stats(app, ref string, interval time.Duration) (*types.Stats, error)
	Connect(ctx context.Context, app, ref string, ep types.EndpointRequest) (*types.Machine, error)
	Disconnect(ctx context.Context, app, ref, net string) (*types.Machine, error)
	StatPath(ctx context.Context, app, ref, p string) (guest.PathStat, error)
	CopyFrom(ctx context.Context, app, ref, p string, w io.Writer) error
	CopyTo(ctx context.Context, app, ref, dir string, r io.Reader) error
	Processes(ctx context.Context, app, ref string) ([]guest.ProcessInfo, error)
	WaitBooted(ctx context.Context, app, ref string) error
}

// Networks is ferry's network service (a *network.Service).
type Networks = api.NetworkService

// Images is the image cache as the ferry API serves it (the daemon's
// adapter over *image.Store and *rootfs.Manager).
type Images = api.ImageService

// Builder runs Dockerfile builds (the daemon's build service).
type Builder interface {
	Build(ctx context.Context, req api.BuildRequest, contextTar io.Reader, emit func(build.Event)) (*build.Result, error)
}

var _ Machines = (*machine.Manager)(nil)

// app is the app containers are created in (ferry's CLI default).
const app = "default"
