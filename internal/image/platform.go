package image

import (
	"fmt"
	"sort"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ferryvm/ferry/internal/errdefs"
)

// ParsePlatform parses os/arch[/variant] ("linux/arm64/v8").
func ParsePlatform(s string) (v1.Platform, error) {
	p, err := v1.ParsePlatform(s)
	if err != nil || p.OS == "" || p.Architecture == "" {
		return v1.Platform{}, fmt.Errorf("platform %q: want os/arch[/variant], e.g. linux/amd64: %w", s, errdefs.ErrInvalidArgument)
	}
	return *p, nil
}

// FormatPlatform renders p as os/arch[/variant].
func FormatPlatform(p v1.Platform) string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// platformMatches reports whether an index entry's platform satisfies want.
// An empty wanted variant matches any; arm64's "v8" equals no variant.
func platformMatches(have *v1.Platform, want v1.Platform) bool {
	if have == nil || have.OS != want.OS || have.Architecture != want.Architecture {
		return false
	}
	norm := func(p v1.Platform) string {
		if p.Architecture == "arm64" && p.Variant == "v8" {
			return ""
		}
		return p.Variant
	}
	return want.Variant == "" || norm(*have) == norm(want)
}

// selectPlatform picks the manifest for want from idx, or fails listing the
// platforms the index offers.
func selectPlatform(ref string, idx *v1.IndexManifest, want v1.Platform) (v1.Descriptor, error) {
	var avail []string
	for _, m := range idx.Manifests {
		if !manifestTypes[m.MediaType] || m.Platform == nil || m.Platform.OS == "unknown" {
			continue // attestations, nested indexes, artifacts
		}
		if platformMatches(m.Platform, want) {
			return m, nil
		}
		avail = append(avail, FormatPlatform(*m.Platform))
	}
	sort.Strings(avail)
	return v1.Descriptor{}, fmt.Errorf("%s has no image for platform %s (available: %s): pass --platform with one of those: %w",
		ref, FormatPlatform(want), strings.Join(avail, ", "), errdefs.ErrNotFound)
}
