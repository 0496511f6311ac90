package mirror

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/ferryvm/ferry/internal/errdefs"
	"github.com/ferryvm/ferry/internal/image"
)

// Upstream maps pushes under a repository path prefix of the mirror to an
// upstream repository (`ferry daemon --mirror-upstream PREFIX=UPSTREAM`,
// the role containerd's hosts.toml plays for its mirrors): an image pushed
// as PREFIX/rest:tag is stored as UPSTREAM/rest:tag and written back
// there, and a pull of PREFIX/rest:tag the store lacks pulls it from there.
type Upstream struct {
	Prefix   string // whole path components: "team" or "registry.example.com"
	Upstream string // a repository: "registry.example.com/team"
}

// ParseUpstream reads PREFIX=UPSTREAM, or HOST alone for HOST=HOST (pushes
// to MIRROR/HOST/path:tag go to HOST/path:tag).
func ParseUpstream(s string) (Upstream, error) {
	p, u, found := strings.Cut(s, "=")
	if !found {
		u = p
	}
	p, u = strings.Trim(p, "/"), strings.Trim(u, "/")
	if !validRepo(p) {
		return Upstream{}, fmt.Errorf("mirror upstream %q: prefix %q is not a repository path (lower-case components separated by /): %w", s, p, errdefs.ErrInvalidArgument)
	}
	if _, err := image.CanonicalString(u + "/x:latest"); err != nil || u == "" {
		return Upstream{}, fmt.Errorf("mirror upstream %q: %q is not a registry repository (HOST[:PORT][/PATH]): %w", s, u, errdefs.ErrInvalidArgument)
	}
	if !strings.ContainsAny(strings.SplitN(u, "/", 2)[0], ".:") && !strings.HasPrefix(u, "localhost") {
		return Upstream{}, fmt.Errorf("mirror upstream %q: %q does not start with a registry host (a name with a dot or a port, e.g. registry.example.com/%s): %w", s, u, u, errdefs.ErrInvalidArgument)
	}
	return Upstream{Prefix: p, Upstream: u}, nil
}

// WithUpstreams sets the configured name mappings (the longest matching
// prefix applies).
func (s *Server) WithUpstreams(ups ...Upstream) *Server { s.upstreams = ups; return s }

// imageName is the name an image pushed to repo is known by in the store,
// and whether that name is an upstream's (written back, pulled through):
// ns/repo under containerd's ?ns= convention, a configured mapping's
// UPSTREAM/rest, else repo itself (whose first component may already be a
// registry host: registry.example.com/app).
func (s *Server) imageName(r *http.Request, repo string) (string, bool) {
	if ns := r.URL.Query().Get("ns"); ns != "" {
		return ns + "/" + repo, true
	}
	best := -1
	for i, u := range s.upstreams {
		if (repo == u.Prefix || strings.HasPrefix(repo, u.Prefix+"/")) && (best < 0 || len(u.Prefix) > len(s.upstreams[best].Prefix)) {
			best = i
		}
	}
	if best < 0 {
		return repo, false
	}
	u := s.upstreams[best]
	return u.Upstream + strings.TrimPrefix(repo, u.Prefix), true
}
