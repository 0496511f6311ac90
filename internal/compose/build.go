package compose

import (
	"fmt"
	"path/filepath"
	"slices"

	ctypes "github.com/compose-spec/compose-go/v2/types"

	"github.com/ferryvm/ferry/internal/api"
	"github.com/ferryvm/ferry/internal/errdefs"
)

// Build is one service's image build through ferry's builder.
type Build struct {
	Service string
	Image   string // the image the service runs: its image:, else PROJECT-SERVICE
	Context string // the context directory
	// Dockerfile is the Dockerfile's path (default CONTEXT/Dockerfile);
	// empty when Request carries an inline one (dockerfile_inline).
	Dockerfile string
	Request    api.BuildRequest // tags, args, target, labels, …; the Dockerfile is the caller's to read
}

// newBuild is sc's build, nil when it has none.
func newBuild(proj *ctypes.Project, sc ctypes.ServiceConfig, image string) (*Build, error) {
	bc := sc.Build
	if bc == nil {
		return nil, nil
	}
	if len(bc.AdditionalContexts) > 0 || len(bc.Secrets) > 0 || len(bc.SSH) > 0 {
		return nil, fmt.Errorf("build: additional_contexts, secrets and ssh are not supported: %w", errdefs.ErrInvalidArgument)
	}
	b := &Build{Service: sc.Name, Image: image, Context: bc.Context}
	if b.Context == "" {
		b.Context = proj.WorkingDir
	}
	if !filepath.IsAbs(b.Context) {
		return nil, fmt.Errorf("build: context %s: only a local directory can be a build context: %w", bc.Context, errdefs.ErrInvalidArgument)
	}
	switch {
	case bc.DockerfileInline != "":
		b.Request.Dockerfile = []byte(bc.DockerfileInline)
	case bc.Dockerfile == "":
		b.Dockerfile = filepath.Join(b.Context, "Dockerfile")
	case filepath.IsAbs(bc.Dockerfile):
		b.Dockerfile = bc.Dockerfile
	default:
		b.Dockerfile = filepath.Join(b.Context, bc.Dockerfile)
	}
	r := &b.Request
	r.Tags = append([]string{image}, bc.Tags...)
	r.Target, r.NoCache, r.Pull = bc.Target, bc.NoCache, bc.Pull
	switch bc.Network {
	case "", "default", "none":
		r.Network = bc.Network
	case "host":
		r.Network = "default"
	default:
		return nil, fmt.Errorf("build: network %s: want default or none: %w", bc.Network, errdefs.ErrInvalidArgument)
	}
	if len(bc.Platforms) > 1 {
		return nil, fmt.Errorf("build: one platform at a time, not %v: %w", bc.Platforms, errdefs.ErrInvalidArgument)
	}
	if len(bc.Platforms) == 1 {
		r.Platform = bc.Platforms[0]
	} else if sc.Platform != "" {
		r.Platform = sc.Platform
	}
	for k, v := range bc.Args {
		if v != nil {
			if r.BuildArgs == nil {
				r.BuildArgs = map[string]string{}
			}
			r.BuildArgs[k] = *v
		}
	}
	r.Labels = map[string]string{LabelProject: proj.Name, LabelService: sc.Name}
	for k, v := range bc.Labels {
		r.Labels[k] = v
	}
	return b, nil
}

// Builds are the builds of the named services (all when none is named)
// and, with deps, of what they depend on, sorted by service.
func (p *Plan) Builds(services []string, deps bool) ([]*Build, error) {
	sel, err := p.selection(services, !deps)
	if err != nil {
		return nil, err
	}
	var out []*Build
	for _, n := range slices.Sorted(mapKeys(sel)) {
		if b := p.Services[n].Build; b != nil {
			out = append(out, b)
		}
	}
	return out, nil
}

// Images are the images of the named services (all when none is named)
// for which keep holds, sorted, each once.
func (p *Plan) Images(services []string, keep func(*Service) bool) ([]string, error) {
	sel, err := p.selection(services, true)
	if err != nil {
		return nil, err
	}
	var out []string
	for n := range sel {
		if s := p.Services[n]; keep(s) {
			out = append(out, s.Config.Image)
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}
