package daemon

import (
	"context"

	"github.com/ferryvm/ferry/internal/dockerapi"
)

// wireDockerAPI serves the Docker Engine API over the same services (unless
// --docker-socket none and no --docker-addr).
func wireDockerAPI(_ context.Context, d *daemon) error {
	if d.cfg.DockerSocket == "" && d.cfg.DockerAddr == "" {
		return nil
	}
	d.docker = dockerapi.New(dockerapi.Config{Machines: d.machines, Images: d.imageSvc, Networks: d.network, Volumes: d.volumes, Builder: buildService{d.builder}, Root: d.cfg.Root,
		Version: d.cfg.Version, Logger: d.log.With("svc", "dockerapi")})
	return nil
}
