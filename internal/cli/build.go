package cli

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ferryvm/ferry/internal/api"
	"github.com/ferryvm/ferry/internal/build"
	"github.com/ferryvm/ferry/internal/build/buildctx"
	"github.com/ferryvm/ferry/internal/errdefs"
)

// maxSecret bounds one --secret (BuildKit's limit).
const maxSecret = 500 << 10

type buildFlags struct {
	tags, buildArgs, labels, secrets []string
	file, target, network, progress  string
	platform, output                 string
	noCache, pull, push, quiet       bool
	failOnSecrets                    bool
}

func newBuildCmd(g *globals) *cobra.Command {
	var o buildFlags
	cmd := &cobra.Command{
		Use:   "build [OPTIONS] CONTEXT|-",
		Short: "Build an image from a Dockerfile; every RUN runs in a micro-VM",
		Long: "Build an image from a Dockerfile into the image cache (ferry images lists it, ferry run starts it).\n" +
			"CONTEXT is a directory (its .dockerignore applies) or - for a tar (or a Dockerfile alone) on stdin.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return runBuild(cmd.Context(), g, cmd, args[0], o) },
	}
	f := cmd.Flags()
	f.StringArrayVarP(&o.tags, "tag", "t", nil, "name the image NAME[:TAG] (repeatable)")
	f.StringVarP(&o.file, "file", "f", "", "the Dockerfile (default: CONTEXT/Dockerfile; - reads it from stdin)")
	f.StringArrayVar(&o.buildArgs, "build-arg", nil, "set a build argument KEY=VALUE (KEY alone takes it from the environment)")
	f.StringVar(&o.target, "target", "", "build this stage (default: the last)")
	f.BoolVar(&o.noCache, "no-cache", false, "run every step, ignoring the step cache")
	f.BoolVar(&o.pull, "pull", false, "pull base images even when cached")
	f.StringArrayVar(&o.labels, "label", nil, "add a label KEY=VALUE to the image (repeatable)")
	f.StringArrayVar(&o.secrets, "secret", nil, "a secret for RUN --mount=type=secret: id=ID,src=FILE or id=ID,env=VAR")
	f.StringVar(&o.network, "network", "default", "network of RUN steps: default or none")
	f.StringVar(&o.progress, "progress", "auto", "progress output: auto or plain")
	f.StringVar(&o.platform, "platform", "", "target platform os/arch (default: the daemon's)")
	f.BoolVar(&o.push, "push", false, "push every tag once built")
	f.StringVarP(&o.output, "output", "o", "", "also write the image out: type=oci,dest=FILE (an OCI layout tar)")
	f.BoolVarP(&o.quiet, "quiet", "q", false, "print only the image ID")
	f.BoolVar(&o.failOnSecrets, "fail-on-secrets", false, "fail (and tag nothing) when a lower layer hides a secret")
	return cmd
}

func runBuild(ctx context.Context, g *globals, cmd *cobra.Command, ctxArg string, o buildFlags) error {
	if o.progress != "auto" && o.progress != "plain" {
		return fmt.Errorf("--progress %q: want auto or plain: %w", o.progress, errdefs.ErrInvalidArgument)
	}
	dest, err := parseOutput(o.output)
	if err != nil {
		return err
	}
	req := api.BuildRequest{Tags: o.tags, Target: o.target, NoCache: o.noCache, Pull: o.pull, Network: o.network,
		Platform: o.platform, Push: o.push, FailOnSecrets: o.failOnSecrets}
	if req.BuildArgs, err = keyValues("--build-arg", o.buildArgs, true); err != nil {
		return err
	}
	if v, ok := os.LookupEnv("SOURCE_DATE_EPOCH"); ok && req.BuildArgs["SOURCE_DATE_EPOCH"] == "" {
		if req.BuildArgs == nil {
			req.BuildArgs = map[string]string{}
		}
		req.BuildArgs["SOURCE_DATE_EPOCH"] = v // as buildx does
	}
	if req.Labels, err = keyValues("--label", o.labels, false); err != nil {
		return err
	}
	if req.Secrets, err = readSecrets(o.secrets); err != nil {
		return err
	}
	if o.push && len(o.tags) > 0 {
		if req.PushAuth, err = callerAuth(o.tags[0]); err != nil {
			return err
		}
	}
	body, err := buildContext(ctx, cmd.InOrStdin(), ctxArg, o.file, &req)
	if err != nil {
		return err
	}
	defer body.Close()
	c, err := g.apiClient()
	if err != nil {
		return err
	}
	p := newBuildPrinter(g.err, o.quiet)
	res, err := c.Build(ctx, req, body, p.event)
	if err != nil {
		return fmt.Errorf("build: %w", err)
	}
	p.result(res)
	if dest != "" {
		refs := []string{res.ID.String()}
		if len(o.tags) > 0 {
			refs = o.tags
		}
		if err := writeOutput(ctx, c, dest, refs); err != nil {
			return err
		}
	}
	if o.quiet {
		_, err = fmt.Fprintln(g.out, res.ID)
	}
	return err
}

// buildContext returns the body to send: the context as a tar (the
// Dockerfile travels in req unless it is in a piped tar).
func buildContext(ctx context.Context, stdin io.Reader, ctxArg, file string, req *api.BuildRequest) (io.ReadCloser, error) {
	if ctxArg == "-" {
		if file == "-" {
			return nil, fmt.Errorf("-f - and a context on stdin: only one can come from stdin: %w", errdefs.ErrInvalidArgument)
		}
		br := bufio.NewReaderSize(stdin, 64<<10)
		head, _ := br.Peek(512)
		if isTar(head) {
			req.DockerfilePath = file // read from the piped context on the daemon
			return io.NopCloser(br), nil
		}
		// A Dockerfile alone: an empty context.
		df, err := io.ReadAll(io.LimitReader(br, build.MaxDockerfile))
		if err != nil {
			return nil, err
		}
		req.Dockerfile = df
		return io.NopCloser(emptyTar()), nil
	}
	fi, err := os.Stat(ctxArg)
	if err != nil {
		return nil, fmt.Errorf("build context %s: %w", ctxArg, err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("build context %s is not a directory (use - to pipe a tar): %w", ctxArg, errdefs.ErrInvalidArgument)
	}
	var dfPath string
	switch file {
	case "-":
		df, err := io.ReadAll(io.LimitReader(stdin, build.MaxDockerfile))
		if err != nil {
			return nil, err
		}
		req.Dockerfile = df
	case "":
		dfPath = filepath.Join(ctxArg, "Dockerfile")
	default:
		dfPath = file
	}
	if dfPath != "" {
		df, err := os.ReadFile(dfPath)
		if err != nil {
			return nil, fmt.Errorf("Dockerfile: %w", err) //nolint:staticcheck // ST1005: a file name
		}
		req.Dockerfile = df
		if own, err := os.ReadFile(dfPath + buildctx.IgnoreFile); err == nil {
			req.Ignore = own
		}
	}
	ig, err := ignoreFor(ctxArg, req.Ignore)
	if err != nil {
		return nil, err
	}
	pr, pw := io.Pipe()
	go func() {
		_, err := buildctx.Send(ctx, ctxArg, ig, pw)
		pw.CloseWithError(err)
	}()
	return pr, nil
}

func ignoreFor(dir string, own []byte) (*buildctx.Ignore, error) {
	if own != nil {
		return buildctx.ParseIgnore(bytes.NewReader(own))
	}
	return buildctx.IgnoreFor(dir, "")
}

// isTar reports whether head starts a tar archive (ustar magic), or a
// compressed stream (gzip, bzip2, xz, zstd) assumed to hold one.
func isTar(head []byte) bool {
	if len(head) >= 262 && string(head[257:262]) == "ustar" {
		return true
	}
	for _, m := range [][]byte{{0x1f, 0x8b}, []byte("BZh"), {0xfd, '7', 'z', 'X', 'Z'}, {0x28, 0xb5, 0x2f, 0xfd}} {
		if bytes.HasPrefix(head, m) {
			return true
		}
	}
	return false
}

func emptyTar() io.Reader { return bytes.NewReader(make([]byte, 1024)) }

// keyValues parses KEY=VALUE flags; with fromEnv a bare KEY takes the
// environment's value (and is left out when unset), as docker build does.
func keyValues(flag string, vals []string, fromEnv bool) (map[string]string, error) {
	if len(vals) == 0 {
		return nil, nil
	}
	out := map[string]string{}
	for _, kv := range vals {
		k, v, ok := strings.Cut(kv, "=")
		if k == "" {
			return nil, fmt.Errorf("%s %q: want KEY=VALUE: %w", flag, kv, errdefs.ErrInvalidArgument)
		}
		if !ok {
			if !fromEnv {
				return nil, fmt.Errorf("%s %q: want KEY=VALUE: %w", flag, kv, errdefs.ErrInvalidArgument)
			}
			if v, ok = os.LookupEnv(k); !ok {
				continue
			}
		}
		out[k] = v
	}
	return out, nil
}

// readSecrets reads --secret id=ID,src=FILE|env=VAR values.
func readSecrets(specs []string) (map[string][]byte, error) {
	if len(specs) == 0 {
		return nil, nil
	}
	out := map[string][]byte{}
	for _, s := range specs {
		var id, src, env string
		for _, field := range strings.Split(s, ",") {
			k, v, _ := strings.Cut(field, "=")
			switch k {
			case "id":
				id = v
			case "src", "source":
				src = v
			case "env":
				env = v
			case "type":
				if v != "file" && v != "env" {
					return nil, fmt.Errorf("--secret %q: type %q: want file or env: %w", s, v, errdefs.ErrInvalidArgument)
				}
			default:
				return nil, fmt.Errorf("--secret %q: unknown field %q (want id=, src= or env=): %w", s, k, errdefs.ErrInvalidArgument)
			}
		}
		if id == "" || (src == "") == (env == "") {
			return nil, fmt.Errorf("--secret %q: want id=ID with one of src=FILE or env=VAR: %w", s, errdefs.ErrInvalidArgument)
		}
		if env != "" {
			v, ok := os.LookupEnv(env)
			if !ok {
				return nil, fmt.Errorf("--secret %s: environment variable %s is not set: %w", id, env, errdefs.ErrInvalidArgument)
			}
			out[id] = []byte(v)
			continue
		}
		f, err := os.Open(src)
		if err != nil {
			return nil, fmt.Errorf("--secret %s: %w", id, err)
		}
		b, err := io.ReadAll(io.LimitReader(f, maxSecret+1))
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("--secret %s: %w", id, err)
		}
		if len(b) > maxSecret {
			return nil, fmt.Errorf("--secret %s: %s is over %d KiB: %w", id, src, maxSecret>>10, errdefs.ErrInvalidArgument)
		}
		out[id] = b
	}
	return out, nil
}

// parseOutput reads -o type=oci,dest=FILE.
func parseOutput(s string) (string, error) {
	if s == "" {
		return "", nil
	}
	var typ, dest string
	for _, field := range strings.Split(s, ",") {
		k, v, _ := strings.Cut(field, "=")
		switch k {
		case "type":
			typ = v
		case "dest":
			dest = v
		default:
			return "", fmt.Errorf("-o %q: unknown field %q (want type=oci,dest=FILE): %w", s, k, errdefs.ErrInvalidArgument)
		}
	}
	if typ != "oci" && typ != "docker" {
		return "", fmt.Errorf("-o %q: type %q: ferry writes type=oci (an OCI layout tar; docker load reads it too): %w", s, typ, errdefs.ErrInvalidArgument)
	}
	if dest == "" {
		return "", fmt.Errorf("-o %q: dest=FILE is required: %w", s, errdefs.ErrInvalidArgument)
	}
	return dest, nil
}

// writeOutput saves refs as an OCI layout tar at dest (- is stdout),
// written to a temporary file and renamed so a failure leaves no half file.
func writeOutput(ctx context.Context, c *api.Client, dest string, refs []string) error {
	if dest == "-" {
		return c.SaveImages(ctx, os.Stdout, refs)
	}
	tmp, err := os.CreateTemp(filepath.Dir(dest), ".ferry-build-*.tar")
	if err != nil {
		return fmt.Errorf("-o %s: %w", dest, err)
	}
	defer os.Remove(tmp.Name())
	err = c.SaveImages(ctx, tmp, refs)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("-o %s: %w", dest, err)
	}
	return os.Rename(tmp.Name(), dest)
}

// buildPrinter prints build events the way BuildKit's plain progress does:
// "#N [stage i/n] INSTRUCTION", output lines prefixed "#N", then
// "#N CACHED" or "#N DONE 1.2s".
type buildPrinter struct {
	w     io.Writer
	quiet bool
	open  map[int]string // partial last line per step
}

func newBuildPrinter(w io.Writer, quiet bool) *buildPrinter {
	return &buildPrinter{w: w, quiet: quiet, open: map[int]string{}}
}

func (p *buildPrinter) event(ev build.Event) {
	switch {
	case ev.Warning != "":
		fmt.Fprintln(p.w, "WARNING:", ev.Warning)
	case p.quiet:
		if ev.Step != nil && ev.Step.State == build.StepFailed {
			p.flush()
		}
	case ev.Message != "":
		fmt.Fprintf(p.w, "=> %s\n", ev.Message)
	case ev.Step != nil:
		s := ev.Step
		switch s.State {
		case build.StepRunning:
			fmt.Fprintf(p.w, "#%d [%s %d/%d] %s\n", s.ID, s.Stage, s.Index, s.Total, s.Text)
		case build.StepCached:
			fmt.Fprintf(p.w, "#%d CACHED\n", s.ID)
		case build.StepDone:
			p.flushStep(s.ID)
			fmt.Fprintf(p.w, "#%d DONE %.1fs\n", s.ID, s.Seconds)
		case build.StepFailed:
			p.flushStep(s.ID)
			fmt.Fprintf(p.w, "#%d ERROR: %s\n", s.ID, s.Error)
		}
	case ev.Log != nil:
		data := p.open[ev.Log.ID] + ev.Log.Data
		lines := strings.Split(data, "\n")
		for _, l := range lines[:len(lines)-1] {
			fmt.Fprintf(p.w, "#%d %s\n", ev.Log.ID, strings.TrimRight(l, "\r"))
		}
		p.open[ev.Log.ID] = lines[len(lines)-1]
	case ev.Push != nil && ev.Push.Done == ev.Push.Total && ev.Push.Kind == "layer":
		fmt.Fprintf(p.w, "=> pushed %s (%s)\n", ev.Push.Digest, ev.Push.State)
	}
}

func (p *buildPrinter) flushStep(id int) {
	if l := p.open[id]; l != "" {
		fmt.Fprintf(p.w, "#%d %s\n", id, l)
	}
	delete(p.open, id)
}

func (p *buildPrinter) flush() {
	ids := make([]int, 0, len(p.open))
	for id := range p.open {
		ids = append(ids, id)
	}
	sort.Ints(ids)
	for _, id := range ids {
		p.flushStep(id)
	}
}

func (p *buildPrinter) result(res *build.Result) {
	if p.quiet {
		return
	}
	boots := "no VM booted"
	if res.Boots > 0 {
		boots = fmt.Sprintf("%d builder VM(s) booted", res.Boots)
	}
	fmt.Fprintf(p.w, "=> %d steps, %d cached, %s\n=> writing image %s\n", res.Steps, res.Cached, boots, res.ID)
	for _, t := range res.Tags {
		fmt.Fprintf(p.w, "=> naming to %s\n", t)
	}
	for _, t := range res.Pushed {
		fmt.Fprintf(p.w, "=> pushed %s\n", t)
	}
}
