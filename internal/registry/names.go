package registry

import (
	"strings"

	"github.com/distribution/reference"

	"github.com/ferryvm/ferry/internal/registry/auth"
)

// Namespace maps one org's repository names between the client's view and
// storage. The prefix derives from the org's random ID, never its name, so a
// deleted and re-created org starts empty, and no name a client can type
// reaches outside its own prefix.
type Namespace struct{ prefix string }

// NamespaceFor returns the namespace of the org with id orgID.
func NamespaceFor(orgID string) Namespace { return Namespace{prefix: "o-" + orgID + "/"} }

// Prefix is the internal prefix, with its trailing slash.
func (n Namespace) Prefix() string { return n.prefix }

// Internal maps a client name to its stored name; ok is false when name is
// not a valid repository name or would be too long once prefixed.
func (n Namespace) Internal(name string) (string, bool) {
	if !auth.ValidRepoName(name) || len(n.prefix)+len(name) > reference.RepositoryNameTotalLengthMax {
		return "", false
	}
	return n.prefix + name, true
}

// External maps a stored name back; ok is false for names of other orgs.
func (n Namespace) External(internal string) (string, bool) {
	name, ok := strings.CutPrefix(internal, n.prefix)
	return name, ok && name != ""
}

// route names, as distribution's v2 router calls them, plus referrers.
const (
	routeBase       = "base"
	routeCatalog    = "catalog"
	routeTags       = "tags"
	routeManifest   = "manifest"
	routeBlob       = "blob"
	routeUpload     = "blob-upload"
	routeUploadPart = "blob-upload-chunk"
	routeReferrers  = "referrers"
	routeUnknown    = ""
)

// route is a parsed /v2/ request path.
type route struct {
	name string // route kind
	repo string // the client's repository name ("" for base/catalog)
	rest string // the path after the name, from its leading slash
}

// suffixes are the route suffixes after a name, tried in order, the most
// specific first. The name is everything before the last occurrence that
// leaves a valid suffix, which is what distribution's greedy router matches,
// so a name may itself hold "blobs" or "manifests" components. (Plain
// string search: regexps here cost more than the rest of the middleware.)
var suffixes = []struct {
	name   string
	marker string // the suffix starts with this
	tail   bool   // a final path element follows the marker
}{
	{routeTags, "/tags/list", false},
	{routeManifest, "/manifests/", true},
	{routeUpload, "/blobs/uploads/", false},
	{routeUpload, "/blobs/uploads", false},
	{routeUploadPart, "/blobs/uploads/", true},
	{routeBlob, "/blobs/", true},
	{routeReferrers, "/referrers/", true},
}

// parseRoute parses a decoded request path.
func parseRoute(path string) route {
	switch path {
	case "/v2", "/v2/":
		return route{name: routeBase}
	case "/v2/_catalog":
		return route{name: routeCatalog}
	}
	p, ok := strings.CutPrefix(path, "/v2/")
	if !ok {
		return route{name: routeUnknown}
	}
	for _, sfx := range suffixes {
		i := strings.LastIndex(p, sfx.marker)
		if i <= 0 {
			continue
		}
		rest := p[i+len(sfx.marker):]
		if sfx.tail != (rest != "") || strings.Contains(rest, "/") {
			continue
		}
		return route{name: sfx.name, repo: p[:i], rest: p[i:]}
	}
	return route{name: routeUnknown}
}
