package build

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"

	"github.com/ferryvm/ferry/internal/build/buildctx"
	"github.com/ferryvm/ferry/internal/build/dockerfile"
	"github.com/ferryvm/ferry/internal/build/layer"
	"github.com/ferryvm/ferry/internal/build/secretscan"
	"github.com/ferryvm/ferry/internal/errdefs"
	"github.com/ferryvm/ferry/internal/image"
)

// build is one Build in progress.
type build struct {
	b       *Builder
	req     Request
	f       *dockerfile.File
	ctxRoot *buildctx.Root
	id      string
	lease   string
	epoch   *time.Time
	norm    layer.Normalizer
	emit    func(Event)
	work    string
	start   time.Time

	stages map[*dockerfile.Stage]*stageState
	nextID int
	steps  int
	cached int
	boots  int
	// images are the flattened --from images, by digest.
	images map[v1.Hash]*flat
}

// ErrStepFailed is wrapped when a RUN exits non-zero.
var ErrStepFailed = errors.New("build step failed")

func (bd *build) run(ctx context.Context) (*Result, error) {
	for _, s := range bd.f.Stages {
		st, err := bd.stage(ctx, s)
		if err != nil {
			return nil, err
		}
		bd.stages[s] = st
	}
	final := bd.stages[bd.f.Target]
	manifest, config, err := bd.assemble(final)
	if err != nil {
		return nil, err
	}
	res := &Result{Steps: bd.steps, Cached: bd.cached, Boots: bd.boots}
	img, err := final.image(bd.b.c.Images, bd.configFile(final))
	if err != nil {
		return nil, err
	}
	findings, err := secretscan.Scan(ctx, img)
	if err != nil {
		return nil, fmt.Errorf("secret scan: %w", err)
	}
	res.Findings = findings
	for _, f := range findings {
		bd.emit(Event{Warning: "secret: " + f.String()})
	}
	if len(findings) > 0 && bd.req.FailOnSecrets {
		return nil, fmt.Errorf("%d secret(s) hidden in lower layers (see the warnings; --fail-on-secrets): nothing tagged: %w", len(findings), errdefs.ErrConflict)
	}
	sum, err := bd.b.c.Images.PutImage(ctx, manifest, config, bd.req.Tags)
	if err != nil {
		return nil, err
	}
	res.ID, res.Tags = sum.ID, sum.RepoTags
	if bd.req.Push {
		for _, t := range bd.req.Tags {
			bd.emit(Event{Message: "pushing " + t})
			if _, err := bd.b.c.Pusher.Push(ctx, t, bd.req.PushAuth, func(p image.Progress) { pp := p; bd.emit(Event{Push: &pp}) }); err != nil {
				return res, fmt.Errorf("built %s, but the push failed: %w", sum.ID, err)
			}
			res.Pushed = append(res.Pushed, t)
		}
	}
	return res, nil
}

// stage builds one stage.
func (bd *build) stage(ctx context.Context, s *dockerfile.Stage) (st *stageState, err error) {
	st, triggers, baseArgs, err := bd.from(ctx, s)
	if err != nil {
		return nil, err
	}
	defer func() {
		if cerr := st.close(context.WithoutCancel(ctx), bd); cerr != nil && err == nil {
			err = cerr
		}
	}()
	steps, args, err := s.Dispatch(st.cfg.Config, triggers, baseArgs)
	if err != nil {
		return nil, err
	}
	st.args = args
	for i, step := range steps {
		bd.nextID++
		ev := &StepEvent{ID: bd.nextID, Stage: s.String(), Index: i + 1, Total: len(steps), Text: step.Text}
		t0 := time.Now()
		var cached bool
		switch step.Kind {
		case dockerfile.Meta:
			err = nil
		case dockerfile.Copy:
			bd.stepStart(ev)
			cached, err = bd.copy(ctx, st, step, ev)
		case dockerfile.Run:
			bd.stepStart(ev)
			cached, err = bd.runStep(ctx, st, step, ev)
		}
		if err != nil {
			ev.State, ev.Error, ev.Seconds = StepFailed, err.Error(), time.Since(t0).Seconds()
			bd.emit(Event{Step: ev})
			return st, fmt.Errorf("%s [%d/%d] %s: %w", s, i+1, len(steps), step.Text, err)
		}
		st.cfg.Config = step.Config
		h := v1.History{CreatedBy: step.History, Comment: "ferry build", Created: v1.Time{Time: bd.created()}}
		if step.Kind == dockerfile.Meta {
			h.EmptyLayer = true
			if step.History == "" {
				continue // ONBUILD registers a trigger and records nothing
			}
		}
		st.history = append(st.history, h)
		bd.steps++
		ev.State, ev.Seconds = StepDone, time.Since(t0).Seconds()
		if cached {
			ev.State = StepCached
			bd.cached++
		}
		if step.Kind != dockerfile.Meta {
			bd.emit(Event{Step: ev})
		}
	}
	return st, nil
}

func (bd *build) stepStart(ev *StepEvent) {
	e := *ev
	e.State = StepRunning
	bd.emit(Event{Step: &e})
}

// created is the time recorded in the config and history.
func (bd *build) created() time.Time {
	if bd.epoch != nil {
		return *bd.epoch
	}
	return bd.start
}

// from starts a stage's state from its base: an earlier stage, scratch,
// or an image (pulled when not cached, or always with --pull).
func (bd *build) from(ctx context.Context, s *dockerfile.Stage) (*stageState, []string, []instructions.KeyValuePairOptional, error) {
	if s.BaseStage != nil {
		parent := bd.stages[s.BaseStage]
		return parent.child(s), nil, parent.args, nil
	}
	st := &stageState{s: s}
	if s.Scratch() {
		st.cfg = &v1.ConfigFile{OS: platformOS(bd.req.Platform), Architecture: platformArch(bd.req.Platform), RootFS: v1.RootFS{Type: "layers"}}
		st.key = "scratch"
		return st, nil, nil, nil
	}
	img, d, err := bd.resolveImage(ctx, s.Base)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("FROM %s (Dockerfile:%d): %w", s.Base, s.Line, err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, nil, nil, fmt.Errorf("FROM %s: config: %w", s.Base, err)
	}
	m, err := img.Manifest()
	if err != nil {
		return nil, nil, nil, fmt.Errorf("FROM %s: manifest: %w", s.Base, err)
	}
	st.root, st.rootDigest, st.rootManifest = img, d, m
	st.cfg = cfg.DeepCopy()
	st.history = append([]v1.History(nil), cfg.History...)
	st.key = "image:" + d.String()
	st.cfg.Config.OnBuild = nil // the triggers run now and are not inherited
	return st, cfg.Config.OnBuild, nil, nil
}

// resolveImage finds ref in the cache, pulling it when missing (or always
// with --pull), and holds it with the build's lease.
func (bd *build) resolveImage(ctx context.Context, ref string) (v1.Image, v1.Hash, error) {
	ims := bd.b.c.Images
	img, d, err := ims.Image(ctx, ref)
	if bd.req.Pull || errors.Is(err, errdefs.ErrNotFound) {
		if bd.b.c.Puller == nil {
			if err != nil {
				return nil, v1.Hash{}, err
			}
		} else {
			bd.emit(Event{Message: "pulling " + ref})
			if _, perr := bd.b.c.Puller.Pull(ctx, ref, nil); perr != nil {
				return nil, v1.Hash{}, perr
			}
			img, d, err = ims.Image(ctx, ref)
		}
	}
	if err != nil {
		return nil, v1.Hash{}, err
	}
	if err := ims.AddLease(ctx, bd.lease, d); err != nil {
		return nil, v1.Hash{}, err
	}
	return img, d, nil
}

func platformOS(p v1.Platform) string {
	if p.OS == "" {
		return "linux"
	}
	return p.OS
}

func platformArch(p v1.Platform) string {
	if p.Architecture == "" {
		return "amd64"
	}
	return p.Architecture
}

// keyParts renders the fields of a step that its layer depends on.
func envPart(env []string) string { return strings.Join(env, "\x00") }
