package registry

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/distribution/distribution/v3/registry/api/errcode"
)

// maxCatalogPage is the most names one catalog page returns, whatever n
// asks (the spec lets a registry return fewer).
const maxCatalogPage = 1000

// serveCatalog lists the caller's repositories from the store: only its
// org's, by their external names, paginated with n/last and a Link header.
func (s *Server) serveCatalog(w http.ResponseWriter, r *http.Request, c *caller, q url.Values) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		serveError(w, errcode.ErrorCodeUnsupported, nil)
		return
	}
	n := maxCatalogPage
	if v := q.Get("n"); v != "" {
		parsed, err := strconv.Atoi(v)
		if err != nil || parsed < 0 {
			serveError(w, errcode.ErrorCodePaginationNumberInvalid, map[string]string{"n": v})
			return
		}
		n = min(parsed, maxCatalogPage)
	}
	last := q.Get("last")
	repos := []string{}
	if n > 0 {
		list, err := s.store.Repos(r.Context(), c.token.OrgID, last, n+1)
		if err != nil {
			s.log.Error("registry catalog", "err", err)
			serveError(w, errcode.ErrorCodeUnknown, nil)
			return
		}
		if len(list) > n {
			list = list[:n]
			next := url.Values{"n": {strconv.Itoa(n)}, "last": {list[n-1]}}
			w.Header().Set("Link", fmt.Sprintf(`</v2/_catalog?%s>; rel="next"`, next.Encode()))
		}
		repos = append(repos, list...)
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string][]string{"repositories": repos})
}
