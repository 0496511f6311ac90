package build

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ferryvm/ferry/internal/build/buildctx"
	"github.com/ferryvm/ferry/internal/build/cache"
	"github.com/ferryvm/ferry/internal/build/dockerfile"
	"github.com/ferryvm/ferry/internal/build/layer"
	"github.com/ferryvm/ferry/internal/build/secretscan"
	"github.com/ferryvm/ferry/internal/errdefs"
)

// Config wires a Builder.
type Config struct {
	Images Images
	Puller Puller
	Pusher Pusher // nil: --push is refused
	Runner Runner // nil: RUN steps that miss the cache fail
	Cache  *cache.Store
	// Dir is the builder's directory (paths.Root.Build()).
	Dir    string
	Logger *slog.Logger
}

// Builder runs builds. It is safe for concurrent use.
type Builder struct {
	c Config
}

// New returns a builder.
func New(c Config) (*Builder, error) {
	if c.Images == nil || c.Cache == nil || c.Dir == "" {
		return nil, fmt.Errorf("builder: images, cache and dir are required: %w", errdefs.ErrInvalidArgument)
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	for _, d := range []string{c.ContextsDir(), c.workDir(), c.mountsDir()} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("builder: %w", err)
		}
	}
	return &Builder{c: c}, nil
}

// ContextsDir is where received build contexts are extracted.
func (c Config) ContextsDir() string { return filepath.Join(c.Dir, "contexts") }
func (c Config) workDir() string     { return filepath.Join(c.Dir, "work") }
func (c Config) mountsDir() string   { return filepath.Join(c.Dir, "mounts") }

// buildLeasePrefix starts the lease that holds a build's blobs until its
// image is recorded.
const buildLeasePrefix = "build:"

// BuildStream receives the build context as the tar stream ctxTar into a
// fresh directory (breakout-safe, see buildctx.Receive), runs req on it and
// removes it.
func (b *Builder) BuildStream(ctx context.Context, req Request, ctxTar io.Reader, emit func(Event)) (*Result, error) {
	dir, err := os.MkdirTemp(b.c.ContextsDir(), "ctx-")
	if err != nil {
		return nil, fmt.Errorf("build context: %w", err)
	}
	defer os.RemoveAll(dir)
	if emit != nil {
		emit(Event{Message: "receiving the build context"})
	}
	st, err := buildctx.Receive(ctx, ctxTar, dir)
	if err != nil {
		return nil, err
	}
	if emit != nil {
		emit(Event{Message: fmt.Sprintf("build context: %d files, %s", st.Files, humanBytes(st.Bytes))})
	}
	req.Context = dir
	return b.Build(ctx, req, emit)
}

// MaxDockerfile bounds a Dockerfile read from the context.
const MaxDockerfile = 10 << 20

// readDockerfile reads the Dockerfile from the context when the request
// does not carry it.
func readDockerfile(req *Request) error {
	if len(req.Dockerfile) > 0 {
		return nil
	}
	p := req.DockerfilePath
	if p == "" {
		p = "Dockerfile"
	}
	r, err := buildctx.OpenRoot(req.Context)
	if err != nil {
		return err
	}
	defer r.Close()
	f, err := r.Open(p)
	if err != nil {
		return fmt.Errorf("no Dockerfile %s in the build context (name it with -f): %w", p, errdefs.ErrInvalidArgument)
	}
	defer f.Close()
	req.Dockerfile, err = io.ReadAll(io.LimitReader(f, MaxDockerfile))
	return err
}

// Prune drops the step-cache records not used for olderThan (0: all),
// releases their layers and collects what no image holds any more.
func (b *Builder) Prune(ctx context.Context, olderThan time.Duration) (*PruneReport, error) {
	var before time.Time
	if olderThan > 0 {
		before = now().Add(-olderThan)
	}
	n, _, err := b.c.Cache.Prune(ctx, before)
	if err != nil {
		return nil, fmt.Errorf("prune build cache: %w", err)
	}
	rep := &PruneReport{Steps: n}
	gc, err := b.c.Images.GC(ctx)
	if err != nil {
		return rep, fmt.Errorf("prune build cache: %w", err)
	}
	rep.BytesFreed = gc.BytesFreed
	return rep, nil
}

// Scan runs the secret scan on a cached image.
func (b *Builder) Scan(ctx context.Context, ref string) ([]secretscan.Finding, error) {
	img, _, err := b.c.Images.Image(ctx, ref)
	if err != nil {
		return nil, err
	}
	return secretscan.Scan(ctx, img)
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// Recover clears what a daemon killed mid-build left: received contexts,
// work trees, per-build leases and builder VMs. Call it before serving.
func (b *Builder) Recover(ctx context.Context) error {
	var errs []error
	for _, d := range []string{b.c.ContextsDir(), b.c.workDir()} {
		ents, _ := os.ReadDir(d)
		for _, e := range ents {
			errs = append(errs, os.RemoveAll(filepath.Join(d, e.Name())))
		}
	}
	if leases, err := b.c.Images.Leases(ctx); err == nil {
		for id := range leases {
			if strings.HasPrefix(id, buildLeasePrefix) {
				errs = append(errs, b.c.Images.RemoveLease(ctx, id))
			}
		}
	}
	if b.c.Runner != nil {
		errs = append(errs, b.c.Runner.Reap(ctx))
	}
	return errors.Join(errs...)
}

// Build runs req. Events go to emit as the build goes (emit must not block
// for long). On any failure nothing is tagged.
func (b *Builder) Build(ctx context.Context, req Request, emit func(Event)) (*Result, error) {
	if emit == nil {
		emit = func(Event) {}
	}
	if req.Network == "" {
		req.Network = "default"
	}
	if req.Network != "default" && req.Network != "none" {
		return nil, fmt.Errorf("--network %q: want default or none: %w", req.Network, errdefs.ErrInvalidArgument)
	}
	if req.Push && b.c.Pusher == nil {
		return nil, fmt.Errorf("--push: this daemon cannot push: %w", errdefs.ErrUnavailable)
	}
	for _, t := range req.Tags {
		if t == "" {
			return nil, fmt.Errorf("-t: empty tag: %w", errdefs.ErrInvalidArgument)
		}
	}
	if err := readDockerfile(&req); err != nil {
		return nil, err
	}
	epoch, err := sourceDateEpoch(req.BuildArgs)
	if err != nil {
		return nil, err
	}
	f, err := dockerfile.Parse(req.Dockerfile, dockerfile.Options{BuildArgs: req.BuildArgs, Target: req.Target, Platform: req.Platform})
	if err != nil {
		return nil, err
	}
	for _, w := range f.Warnings {
		emit(Event{Warning: w})
	}
	var ig *buildctx.Ignore
	if req.Ignore != nil {
		ig, err = buildctx.ParseIgnore(bytes.NewReader(req.Ignore))
	} else {
		ig, err = buildctx.IgnoreFor(req.Context, "")
	}
	if err != nil {
		return nil, err
	}
	if err := buildctx.Prune(req.Context, ig); err != nil {
		return nil, fmt.Errorf("build context: %w", err)
	}
	root, err := buildctx.OpenRoot(req.Context)
	if err != nil {
		return nil, fmt.Errorf("build context: %w", err)
	}
	defer root.Close()
	id := newID()
	work := filepath.Join(b.c.workDir(), id)
	if err := os.MkdirAll(work, 0o700); err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	bd := &build{b: b, req: req, f: f, ctxRoot: root, id: id, lease: buildLeasePrefix + id, epoch: epoch,
		norm: layer.Normalizer{Epoch: epoch}, emit: emit, work: work, start: now().UTC(),
		stages: map[*dockerfile.Stage]*stageState{}}
	defer func() {
		if err := b.c.Images.RemoveLease(context.WithoutCancel(ctx), bd.lease); err != nil {
			b.c.Logger.Warn("build: release lease", "lease", bd.lease, "err", err)
		}
	}()
	return bd.run(ctx)
}

// sourceDateEpoch reads SOURCE_DATE_EPOCH from the build args (the CLI
// passes its environment's value there, as buildx does).
func sourceDateEpoch(args map[string]string) (*time.Time, error) {
	v, ok := args["SOURCE_DATE_EPOCH"]
	if !ok || v == "" {
		return nil, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return nil, fmt.Errorf("SOURCE_DATE_EPOCH=%q: want seconds since 1970: %w", v, errdefs.ErrInvalidArgument)
	}
	t := time.Unix(n, 0).UTC()
	return &t, nil
}

func newID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// digestRef is a reference the image store resolves to manifest d.
func digestRef(d v1.Hash) string { return d.String() }

func sha(b []byte) v1.Hash {
	s := sha256.Sum256(b)
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(s[:])}
}
