package auth

import (
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/distribution/reference"

	"github.com/ferryvm/ferry/internal/registry/store"
)

// Access is one resource and the actions granted (or requested) on it, as
// the "access" claim of a Docker registry token carries it.
type Access struct {
	Type    string   `json:"type"`
	Name    string   `json:"name"`
	Actions []string `json:"actions"`
}

// String formats a as a scope ("repository:web:pull,push").
func (a Access) String() string { return a.Type + ":" + a.Name + ":" + strings.Join(a.Actions, ",") }

// Allows reports whether a grants action on type:name.
func (a Access) Allows(typ, name, action string) bool {
	return a.Type == typ && a.Name == name && (slices.Contains(a.Actions, action) || slices.Contains(a.Actions, "*"))
}

// ParseScopes parses scope parameters. Each may hold several
// space-separated scopes; malformed ones are dropped (the token spec says
// unknown scopes are simply not granted).
func ParseScopes(params []string) []Access {
	var out []Access
	for _, p := range params {
		for _, s := range strings.Fields(p) {
			// The name may itself hold colons (a registry host:port), so
			// the type ends at the first colon and the actions start after
			// the last.
			i, j := strings.Index(s, ":"), strings.LastIndex(s, ":")
			if i < 0 || i == j {
				continue
			}
			typ, name, actions := s[:i], s[i+1:j], s[j+1:]
			if k := strings.Index(typ, "("); k >= 0 { // "repository(plugin)"
				typ = typ[:k]
			}
			var acts []string
			for _, a := range strings.Split(actions, ",") {
				if a != "" && !slices.Contains(acts, a) {
					acts = append(acts, a)
				}
			}
			out = append(out, Access{Type: typ, Name: name, Actions: acts})
		}
	}
	return out
}

// repoNameRE is the OCI distribution-spec grammar of a repository name:
// lowercase alphanumeric path components joined by single separators, so
// no "..", no empty component, no uppercase, nothing outside ASCII.
var repoNameRE = regexp.MustCompile(`^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$`)

// ValidRepoName reports whether name is a repository name a client may use.
func ValidRepoName(name string) bool {
	return name != "" && len(name) <= reference.RepositoryNameTotalLengthMax && repoNameRE.MatchString(name)
}

// Grant returns what token t may have of requested: the intersection of the
// requested actions with those its scope allows, on valid repository names
// (always inside t's org: names are relative to it) and on the catalog.
// Anything else is silently not granted, as the token spec prescribes.
func Grant(t store.Token, requested []Access) []Access {
	allowed := t.Scope.Actions()
	var out []Access
	for _, r := range requested {
		var acts []string
		switch {
		case r.Type == "repository" && ValidRepoName(r.Name):
			for _, a := range r.Actions {
				if a == "*" {
					acts = append(acts, allowed...)
					continue
				}
				if slices.Contains(allowed, a) {
					acts = append(acts, a)
				}
			}
		case r.Type == "registry" && r.Name == "catalog":
			if slices.Contains(r.Actions, "*") {
				acts = []string{"*"}
			}
		}
		if len(acts) == 0 {
			continue
		}
		sort.Strings(acts)
		acts = slices.Compact(acts)
		out = mergeAccess(out, Access{Type: r.Type, Name: r.Name, Actions: acts})
	}
	return out
}

func mergeAccess(list []Access, a Access) []Access {
	for i := range list {
		if list[i].Type == a.Type && list[i].Name == a.Name {
			acts := append(slices.Clone(list[i].Actions), a.Actions...)
			sort.Strings(acts)
			list[i].Actions = slices.Compact(acts)
			return list
		}
	}
	return append(list, a)
}
