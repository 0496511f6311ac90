package dockerapi

import "net/http"

// POST /build: the classic builder's request, run by ferry's builder.
func (s *Server) build(w http.ResponseWriter, r *http.Request) error {
	return errNotImplemented{"docker build: not served yet; use ferry build"}
}
