package dockerapi

import "net/http"

// routes lists every endpoint served (docs/docker-api.md has the table).
func (s *Server) routes() {
	s.handle("GET /_ping", s.ping)
	s.handle("GET /version", s.version)
	s.handle("GET /info", s.info)
	s.handle("GET /events", s.events)

	s.handle("POST /containers/create", s.createContainer)
	s.handle("GET /containers/json", s.listContainers)
	s.handle("POST /containers/prune", s.pruneContainers)
	s.handle("GET /containers/{id}/json", s.inspectContainer)
	s.handle("POST /containers/{id}/start", s.startContainer)
	s.handle("POST /containers/{id}/stop", s.stopContainer)
	s.handle("POST /containers/{id}/restart", s.restartContainer)
	s.handle("POST /containers/{id}/kill", s.killContainer)
	s.handle("POST /containers/{id}/wait", s.waitContainer)
	s.handle("POST /containers/{id}/attach", s.attachContainer)
	s.handle("GET /containers/{id}/logs", s.logsContainer)
	s.handle("POST /containers/{id}/resize", s.resizeContainer)
	s.handle("GET /containers/{id}/top", s.topContainer)
	s.handle("GET /containers/{id}/stats", s.statsContainer)
	s.handle("POST /containers/{id}/rename", s.renameContainer)
	s.handle("GET /containers/{id}/archive", s.archiveContainer)
	s.handle("PUT /containers/{id}/archive", s.archiveContainer)
	s.handle("DELETE /containers/{id}", s.removeContainer)
	s.handle("POST /containers/{id}/exec", s.createExec)
	s.handle("POST /exec/{id}/start", s.startExec)
	s.handle("POST /exec/{id}/resize", s.resizeExec)
	s.handle("GET /exec/{id}/json", s.inspectExec)

	s.handle("POST /images/create", s.createImage)
	s.handle("GET /images/json", s.listImages)
	s.handle("POST /images/load", s.loadImages)
	s.handle("GET /images/get", s.getImages)
	s.handle("POST /images/prune", s.pruneImages)
	s.handle("GET /images/{rest...}", s.dispatchImage)
	s.handle("POST /images/{rest...}", s.dispatchImage)
	s.handle("DELETE /images/{rest...}", s.dispatchImage)

	s.handle("POST /networks/create", s.createNetwork)
	s.handle("GET /networks", s.listNetworks)
	s.handle("POST /networks/prune", s.pruneNetworks)
	s.handle("GET /networks/{id}", s.inspectNetwork)
	s.handle("DELETE /networks/{id}", s.removeNetwork)
	s.handle("POST /networks/{id}/connect", s.connectNetwork)
	s.handle("POST /networks/{id}/disconnect", s.disconnectNetwork)

	s.handle("POST /volumes/create", s.createVolume)
	s.handle("GET /volumes", s.listVolumes)
	s.handle("POST /volumes/prune", s.pruneVolumes)
	s.handle("GET /volumes/{name}", s.inspectVolume)
	s.handle("DELETE /volumes/{name}", s.removeVolume)

	s.handle("POST /build", s.build)

	s.handle("/", func(w http.ResponseWriter, r *http.Request) error {
		return notFound("page not found: %s %s is not served by ferry's Docker API", r.Method, r.URL.Path)
	})
}
