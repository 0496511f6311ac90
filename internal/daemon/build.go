package daemon

import (
	"context"
	"io"
	"time"

	"github.com/ferryvm/ferry/internal/api"
	"github.com/ferryvm/ferry/internal/build"
	"github.com/ferryvm/ferry/internal/build/cache"
	"github.com/ferryvm/ferry/internal/build/secretscan"
	"github.com/ferryvm/ferry/internal/build/vm"
	"github.com/ferryvm/ferry/internal/image"
)

// wireBuild builds the Dockerfile builder over the image cache and the
// machine manager (builder VMs are machines), clears what a killed build
// left, and serves the build API.
func wireBuild(ctx context.Context, d *daemon) error {
	log := d.log.With("svc", "build")
	ims, puller, pusher := build.FromStore(d.images)
	if d.writeBack != nil {
		pusher = d.writeBack // --push through the host-local mirror (runnable now, upstream soon)
	}
	cs, err := cache.Open(d.db, ims, d.images.Content())
	if err != nil {
		return err
	}
	b, err := build.New(build.Config{Images: ims, Puller: puller, Pusher: pusher, Runner: vm.New(d.machines, vm.Options{}),
		Cache: cs, Dir: d.root.Build(), Logger: log})
	if err != nil {
		return err
	}
	if err := b.Recover(ctx); err != nil {
		log.Warn("recover builds", "err", err)
	}
	d.builder = b
	api.RegisterBuild(d.api, buildService{b})
	return nil
}

// buildService turns the wire request into a build.
type buildService struct{ b *build.Builder }

func (s buildService) Build(ctx context.Context, req api.BuildRequest, contextTar io.Reader, emit func(build.Event)) (*build.Result, error) {
	r, err := buildRequest(req)
	if err != nil {
		return nil, err
	}
	return s.b.BuildStream(ctx, r, contextTar, emit)
}

func (s buildService) Prune(ctx context.Context, olderThan time.Duration) (*build.PruneReport, error) {
	return s.b.Prune(ctx, olderThan)
}

func (s buildService) Scan(ctx context.Context, ref string) ([]secretscan.Finding, error) {
	return s.b.Scan(ctx, ref)
}

// buildRequest converts the wire request (one place, so a new field is
// carried or noticed).
func buildRequest(req api.BuildRequest) (build.Request, error) {
	r := build.Request{Dockerfile: req.Dockerfile, DockerfilePath: req.DockerfilePath, Ignore: req.Ignore, Tags: req.Tags, BuildArgs: req.BuildArgs,
		Target: req.Target, NoCache: req.NoCache, Pull: req.Pull, Labels: req.Labels, Secrets: req.Secrets,
		Network: req.Network, FailOnSecrets: req.FailOnSecrets, Push: req.Push, PushAuth: authenticator(req.PushAuth)}
	if req.Platform != "" {
		p, err := image.ParsePlatform(req.Platform)
		if err != nil {
			return r, err
		}
		r.Platform = p
	}
	return r, nil
}
