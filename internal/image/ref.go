package image

import (
	"fmt"
	"net"
	"regexp"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/ferryvm/ferry/internal/errdefs"
)

// ParseReference resolves s the way Docker does: "alpine" →
// docker.io/library/alpine:latest, "me/app:1" → docker.io/me/app:1,
// "host:5000/app@sha256:…" keeps its digest. Lowercase names only.
func ParseReference(s string) (name.Reference, error) {
	if s == "" {
		return nil, fmt.Errorf("image reference is empty: %w", errdefs.ErrInvalidArgument)
	}
	ref, err := name.ParseReference(s, name.WithDefaultRegistry("docker.io"))
	if err != nil {
		return nil, fmt.Errorf("invalid image reference %q: %w: %w", s, err, errdefs.ErrInvalidArgument)
	}
	return ref, nil
}

// Canonical is the fully qualified form of ref that the cache stores:
// docker.io/library/alpine:latest, localhost:5000/app@sha256:….
func Canonical(ref name.Reference) string {
	repo := canonicalRepo(ref.Context())
	switch r := ref.(type) {
	case name.Digest:
		return repo + "@" + r.DigestStr()
	case name.Tag:
		return repo + ":" + r.TagStr()
	}
	return ref.Name()
}

func canonicalRepo(r name.Repository) string {
	reg := r.RegistryStr()
	if reg == name.DefaultRegistry {
		reg = "docker.io"
	}
	return reg + "/" + r.RepositoryStr()
}

// CanonicalString parses s and returns its canonical form.
func CanonicalString(s string) (string, error) {
	ref, err := ParseReference(s)
	if err != nil {
		return "", err
	}
	return Canonical(ref), nil
}

// FamiliarName shortens a canonical reference the way `docker images` shows
// it: docker.io/library/alpine:latest → alpine:latest, docker.io/me/app → me/app.
func FamiliarName(canonical string) string {
	if rest, ok := strings.CutPrefix(canonical, "docker.io/"); ok {
		if r, ok := strings.CutPrefix(rest, "library/"); ok && !strings.Contains(r, "/") {
			return r
		}
		return rest
	}
	return canonical
}

// parseForRegistry parses ref with name.Insecure when its registry is to be
// reached over plain HTTP.
func (s *Store) parseForRegistry(ref string) (name.Reference, error) {
	r, err := ParseReference(ref)
	if err != nil {
		return nil, err
	}
	if !s.insecure(r.Context().RegistryStr()) {
		return r, nil
	}
	r2, err := name.ParseReference(ref, name.WithDefaultRegistry("docker.io"), name.Insecure)
	if err != nil {
		return nil, fmt.Errorf("invalid image reference %q: %w: %w", ref, err, errdefs.ErrInvalidArgument)
	}
	return r2, nil
}

// insecure reports whether host (host or host:port) is reached over plain HTTP.
func (s *Store) insecure(host string) bool {
	h := host
	if hh, _, err := net.SplitHostPort(host); err == nil {
		h = hh
	}
	if h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return true
	}
	if ip := net.ParseIP(h); ip != nil && ip.IsLoopback() {
		return true
	}
	for _, i := range s.opts.insecure {
		if i == host || i == h {
			return true
		}
	}
	return false
}

var hexPrefix = regexp.MustCompile(`^(sha256:)?[0-9a-f]{4,64}$`)

// CheckInsecure fails when a caller asks for plain HTTP to a registry
// (host or host:port) that this store does not treat as insecure
// (WithInsecureRegistries, loopback): a client cannot widen the daemon's
// list.
func (s *Store) CheckInsecure(ref string, asked []string) error {
	for _, h := range asked {
		if !s.insecure(h) {
			return fmt.Errorf("pull/push %s: the daemon does not treat %s as an insecure registry; restart it with `ferry daemon --insecure-registry %s`: %w",
				ref, h, h, errdefs.ErrInvalidArgument)
		}
	}
	return nil
}
