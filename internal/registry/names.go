package registry

import (
	"regexp"
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
	if !auth.ValidRepoName(name) || len(n.prefix)+len(name) > reference.NameTotalLengthMax {
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

// anyName matches the name part loosely (validated separately, so bad names
// get NAME_INVALID rather than a 404) and greedily, like distribution's
// router, so a name may itself hold "blobs" or "manifests" components.
const anyName = `(.+)`

// routes are tried in order, the most specific suffix first.
var routes = []struct {
	name string
	re   *regexp.Regexp
}{
	{routeTags, regexp.MustCompile(`^/v2/` + anyName + `(/tags/list)$`)},
	{routeManifest, regexp.MustCompile(`^/v2/` + anyName + `(/manifests/[^/]+)$`)},
	{routeUpload, regexp.MustCompile(`^/v2/` + anyName + `(/blobs/uploads/?)$`)},
	{routeUploadPart, regexp.MustCompile(`^/v2/` + anyName + `(/blobs/uploads/[^/]+)$`)},
	{routeBlob, regexp.MustCompile(`^/v2/` + anyName + `(/blobs/[^/]+)$`)},
	{routeReferrers, regexp.MustCompile(`^/v2/` + anyName + `(/referrers/[^/]+)$`)},
}

// parseRoute parses a decoded request path.
func parseRoute(path string) route {
	switch path {
	case "/v2", "/v2/":
		return route{name: routeBase}
	case "/v2/_catalog":
		return route{name: routeCatalog}
	}
	for _, rt := range routes {
		if m := rt.re.FindStringSubmatch(path); m != nil {
			return route{name: rt.name, repo: m[1], rest: m[2]}
		}
	}
	return route{name: routeUnknown}
}
