package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	ctypes "github.com/compose-spec/compose-go/v2/types"
	"github.com/spf13/cobra"

	"github.com/ferryvm/ferry/internal/api"
	"github.com/ferryvm/ferry/internal/build/buildctx"
	"github.com/ferryvm/ferry/internal/compose"
)

func newComposeBuildCmd(g *globals, f *composeFlags) *cobra.Command {
	var o composeBuildOptions
	var buildArgs []string
	cmd := &cobra.Command{
		Use:   "build [flags] [SERVICE...]",
		Short: "Build the images of the services that have a build section (PROJECT-SERVICE unless image: names it)",
		RunE: func(cmd *cobra.Command, args []string) error {
			proj, err := f.load(cmd.Context())
			if err != nil {
				return err
			}
			plan, err := compose.NewPlan(proj, nil)
			if err != nil {
				return err
			}
			if o.buildArgs, err = keyValues("--build-arg", buildArgs, true); err != nil {
				return err
			}
			c, err := g.apiClient()
			if err != nil {
				return err
			}
			o.services = args
			return composeBuild(cmd.Context(), g, c, plan, o)
		},
	}
	fl := cmd.Flags()
	fl.BoolVar(&o.noCache, "no-cache", false, "run every step, ignoring the step cache")
	fl.BoolVar(&o.pull, "pull", false, "pull base images even when cached")
	fl.BoolVar(&o.push, "push", false, "push the images once built")
	fl.BoolVarP(&o.quiet, "quiet", "q", false, "no build output")
	fl.BoolVar(&o.deps, "with-dependencies", false, "also build what the named services depend on")
	fl.StringArrayVar(&buildArgs, "build-arg", nil, "set a build argument KEY=VALUE for every service")
	return cmd
}

type composeBuildOptions struct {
	services            []string
	deps                bool
	onlyMissing         bool // up without --build: only images not in the cache
	noCache, pull, push bool
	quiet               bool
	buildArgs           map[string]string
}

// composeBuild builds the plan's images (of o.services), at the same time,
// each build's output lines prefixed with its service.
func composeBuild(ctx context.Context, g *globals, c *api.Client, plan *compose.Plan, o composeBuildOptions) error {
	builds, err := plan.Builds(o.services, o.deps || len(o.services) == 0)
	if err != nil {
		return err
	}
	var mu sync.Mutex
	errs := make([]error, len(builds))
	var wg sync.WaitGroup
	for i, b := range builds {
		if o.onlyMissing && plan.Services[b.Service].Pull != ctypes.PullPolicyBuild {
			if _, err := c.InspectImage(ctx, b.Image); err == nil {
				continue
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			var out io.Writer = io.Discard
			if !o.quiet {
				out = &prefixWriter{mu: &mu, out: g.err, prefix: fmt.Sprintf("[%s] ", b.Service)}
			}
			if err := buildService(ctx, c, b, o, out); err != nil {
				errs[i] = fmt.Errorf("build service %s: %w", b.Service, err)
			}
			if pw, ok := out.(*prefixWriter); ok {
				pw.flush()
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func buildService(ctx context.Context, c *api.Client, b *compose.Build, o composeBuildOptions, out io.Writer) error {
	req := b.Request
	req.NoCache = req.NoCache || o.noCache
	req.Pull = req.Pull || o.pull
	req.Push = o.push
	for k, v := range o.buildArgs {
		if req.BuildArgs == nil {
			req.BuildArgs = map[string]string{}
		}
		req.BuildArgs[k] = v
	}
	if req.Push {
		var err error
		if req.PushAuth, err = callerAuth(b.Image); err != nil {
			return err
		}
	}
	var body io.ReadCloser
	if b.Dockerfile != "" {
		var err error
		if body, err = buildContext(ctx, nil, b.Context, b.Dockerfile, &req); err != nil {
			return err
		}
	} else { // dockerfile_inline
		ig, err := buildctx.IgnoreFor(b.Context, "")
		if err != nil {
			return err
		}
		pr, pw := io.Pipe()
		go func() {
			_, err := buildctx.Send(ctx, b.Context, ig, pw)
			pw.CloseWithError(err)
		}()
		body = pr
	}
	defer body.Close()
	p := newBuildPrinter(out, false)
	res, err := c.Build(ctx, req, body, p.event)
	if err != nil {
		return err
	}
	p.result(res)
	return nil
}

// prefixWriter writes whole lines to out, each after prefix, holding mu so
// the lines of several writers do not interleave (the builds' output).
type prefixWriter struct {
	mu     *sync.Mutex
	out    io.Writer
	prefix string
	buf    []byte
}

func (w *prefixWriter) Write(p []byte) (int, error) {
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		w.line(w.buf[:i+1])
		w.buf = w.buf[i+1:]
	}
	return len(p), nil
}

func (w *prefixWriter) flush() {
	if len(w.buf) > 0 {
		w.line(append(w.buf, '\n'))
		w.buf = nil
	}
}

func (w *prefixWriter) line(l []byte) {
	w.mu.Lock()
	defer w.mu.Unlock()
	_, _ = io.WriteString(w.out, w.prefix)
	_, _ = w.out.Write(l)
}
