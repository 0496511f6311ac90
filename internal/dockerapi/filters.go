package dockerapi

import (
	"encoding/json"
	"net/http"
	"strings"
)

// filters is Docker's ?filters= argument: {"key":{"value":true}} (or the
// older {"key":["value"]}).
type filters map[string][]string

func parseFilters(r *http.Request, allowed ...string) (filters, error) {
	raw := r.URL.Query().Get("filters")
	f := filters{}
	if raw == "" {
		return f, nil
	}
	var byMap map[string]map[string]bool
	if err := json.Unmarshal([]byte(raw), &byMap); err == nil {
		for k, vs := range byMap {
			for v, on := range vs {
				if on {
					f[k] = append(f[k], v)
				}
			}
		}
	} else {
		var byList map[string][]string
		if err := json.Unmarshal([]byte(raw), &byList); err != nil {
			return nil, invalid("invalid filters %q: %v", raw, err)
		}
		f = byList
	}
	for k := range f {
		if !contains(allowed, k) {
			return nil, invalid("invalid filter '%s'", k)
		}
	}
	return f, nil
}

// match reports whether the filter key passes: unset, or any value matches.
func (f filters) match(key string, ok func(v string) bool) bool {
	vs, set := f[key]
	if !set {
		return true
	}
	for _, v := range vs {
		if ok(v) {
			return true
		}
	}
	return false
}

// labels checks every label=K or label=K=V filter against ls.
func (f filters) labels(ls map[string]string) bool {
	for _, v := range f["label"] {
		k, want, hasV := strings.Cut(v, "=")
		got, ok := ls[k]
		if !ok || hasV && got != want {
			return false
		}
	}
	return true
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
