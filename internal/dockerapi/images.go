package dockerapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"

	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	"github.com/moby/moby/api/pkg/authconfig"
	dimage "github.com/moby/moby/api/types/image"
	"github.com/moby/moby/api/types/jsonstream"

	"github.com/ferryvm/ferry/internal/api"
	"github.com/ferryvm/ferry/internal/api/types"
	"github.com/ferryvm/ferry/internal/errdefs"
	"github.com/ferryvm/ferry/internal/image"
)

// registryAuth reads X-Registry-Auth (base64url JSON); none: the daemon's
// own keychain is used.
func registryAuth(r *http.Request) (*api.RegistryAuth, error) {
	h := r.Header.Get("X-Registry-Auth")
	if h == "" {
		return nil, nil
	}
	a, err := authconfig.Decode(h)
	if err != nil {
		return nil, invalid("X-Registry-Auth: %v", err)
	}
	if a.Username == "" && a.Password == "" && a.IdentityToken == "" && a.RegistryToken == "" {
		return nil, nil
	}
	return &api.RegistryAuth{Username: a.Username, Password: a.Password, IdentityToken: a.IdentityToken, RegistryToken: a.RegistryToken}, nil
}

// progressStream writes Docker's JSON progress messages, one per line.
type progressStream struct {
	mu sync.Mutex
	w  http.ResponseWriter
}

func newProgressStream(w http.ResponseWriter) *progressStream {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	flush(w)
	return &progressStream{w: w}
}

func (p *progressStream) send(m jsonstream.Message) {
	p.mu.Lock()
	defer p.mu.Unlock()
	_ = writeJSONLine(p.w, m)
}

func (p *progressStream) fail(err error) {
	b, _ := json.Marshal(err.Error())
	p.mu.Lock()
	defer p.mu.Unlock()
	// Docker's error line: "error" beside errorDetail (old clients read it).
	_, _ = fmt.Fprintf(p.w, `{"errorDetail":{"message":%s},"error":%s}`+"\n", b, b)
	flush(p.w)
}

// progress turns image progress into Docker's per-layer lines.
func (p *progressStream) progress(ev image.Progress) {
	if ev.Kind != "layer" {
		return
	}
	id := shortDigest(ev.Digest.Hex)
	switch ev.State {
	case image.StateWaiting:
		p.send(jsonstream.Message{Status: "Waiting", ID: id})
	case image.StateDownloading, image.StatePushing:
		status := "Downloading"
		if ev.State == image.StatePushing {
			status = "Pushing"
		}
		p.send(jsonstream.Message{Status: status, ID: id, Progress: &jsonstream.Progress{Current: ev.Done, Total: ev.Total}})
	case image.StateVerifying:
		p.send(jsonstream.Message{Status: "Verifying Checksum", ID: id})
	case image.StateDone:
		p.send(jsonstream.Message{Status: "Pull complete", ID: id})
	case image.StateExists:
		p.send(jsonstream.Message{Status: "Already exists", ID: id})
	}
}

func shortDigest(hex string) string {
	if len(hex) > 12 {
		return hex[:12]
	}
	return hex
}

// POST /images/create?fromImage=&tag=&platform= (pull). fromSrc (import)
// is not served.
func (s *Server) createImage(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	if q.Get("fromSrc") != "" {
		return errNotImplemented{"docker import: not served by ferry; use docker load with an image archive"}
	}
	ref := q.Get("fromImage")
	if ref == "" {
		return invalid("fromImage is required")
	}
	if tag := q.Get("tag"); tag != "" {
		if strings.HasPrefix(tag, "sha256:") {
			ref += "@" + tag
		} else {
			ref += ":" + tag
		}
	}
	auth, err := registryAuth(r)
	if err != nil {
		return err
	}
	ps := newProgressStream(w)
	name, tag := splitTag(ref)
	ps.send(jsonstream.Message{Status: "Pulling from " + name, ID: tag})
	res, err := s.cfg.Images.Pull(r.Context(), api.PullRequest{Ref: ref, Platform: q.Get("platform"), Auth: auth}, ps.progress)
	if err != nil {
		ps.fail(err)
		return nil
	}
	ps.send(jsonstream.Message{Status: "Digest: " + res.Image.ID.String()})
	status := "Downloaded newer image for " + ref
	if res.BlobsFetched == 0 {
		status = "Image is up to date for " + ref
	}
	ps.send(jsonstream.Message{Status: "Status: " + status})
	return nil
}

// splitTag splits "name:tag" (a digest or no tag: "latest").
func splitTag(ref string) (string, string) {
	if i := strings.LastIndex(ref, "@"); i >= 0 {
		return ref[:i], ref[i+1:]
	}
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		return ref[:i], ref[i+1:]
	}
	return ref, "latest"
}

// GET /images/json?all=&filters=
func (s *Server) listImages(w http.ResponseWriter, r *http.Request) error {
	f, err := parseFilters(r, "dangling", "label", "reference", "before", "since", "until")
	if err != nil {
		return err
	}
	list, err := s.cfg.Images.List(r.Context(), true)
	if err != nil {
		return err
	}
	counts := map[string]int64{}
	for _, m := range s.cfg.Machines.List("", true) {
		counts[m.ImageRef.Digest]++
	}
	out := []dimage.Summary{}
	for _, im := range list {
		if !boolParam(r, "all") && im.Dangling() && len(f["dangling"]) == 0 {
			continue
		}
		if !f.match("dangling", func(v string) bool { return (v == "true" || v == "1") == im.Dangling() }) ||
			!f.match("reference", func(v string) bool { return matchReference(im.RepoTags, v) }) {
			continue
		}
		out = append(out, imageSummary(im, counts[im.ID.String()]))
	}
	return writeJSON(w, http.StatusOK, out)
}

// matchReference matches a reference filter ("busybox", "busybox:vm",
// "localhost:5000/*") against tags, as Docker shortens them.
func matchReference(tags []string, pattern string) bool {
	for _, t := range tags {
		short := familiar(t)
		if t == pattern || short == pattern {
			return true
		}
		name, _ := splitTag(short)
		if name == pattern {
			return true
		}
		if strings.HasSuffix(pattern, "*") && strings.HasPrefix(short, strings.TrimSuffix(pattern, "*")) {
			return true
		}
	}
	return false
}

// familiar is Docker's short form of a reference: docker.io/library/x:t → x:t.
func familiar(ref string) string {
	ref = strings.TrimPrefix(ref, "docker.io/")
	ref = strings.TrimPrefix(ref, "index.docker.io/")
	return strings.TrimPrefix(ref, "library/")
}

func familiarAll(refs []string) []string {
	out := make([]string, 0, len(refs))
	for _, r := range refs {
		out = append(out, familiar(r))
	}
	return out
}

func imageSummary(im image.Summary, containers int64) dimage.Summary {
	return dimage.Summary{ID: im.ID.String(), RepoTags: familiarAll(im.RepoTags), RepoDigests: familiarAll(im.RepoDigests),
		Created: im.Created.Unix(), Size: im.Size, Labels: map[string]string{}, Containers: containers, SharedSize: -1}
}

// imageName is the {name} of /images/{name}/{action}; names have slashes.
func imageName(r *http.Request, action string) string {
	return strings.TrimSuffix(r.PathValue("rest"), "/"+action)
}

// dispatchImage routes /images/{name...}/{json,tag,push,history,get} and
// DELETE /images/{name...}.
func (s *Server) dispatchImage(w http.ResponseWriter, r *http.Request) error {
	rest := r.PathValue("rest")
	if r.Method == http.MethodDelete {
		return s.removeImage(w, r, rest)
	}
	i := strings.LastIndex(rest, "/")
	if i < 0 {
		return notFound("page not found")
	}
	name, action := rest[:i], rest[i+1:]
	switch r.Method + " " + action {
	case "GET json":
		return s.inspectImage(w, r, name)
	case "GET history":
		return s.imageHistory(w, r, name)
	case "GET get":
		return s.saveImages(w, r, []string{name})
	case "POST tag":
		return s.tagImage(w, r, name)
	case "POST push":
		return s.pushImage(w, r, name)
	}
	return notFound("page not found")
}

func (s *Server) image(r *http.Request, name string) (image.Details, error) {
	d, err := s.cfg.Images.Inspect(r.Context(), name)
	if errors.Is(err, errdefs.ErrNotFound) {
		return d, notFound("No such image: %s", name)
	}
	return d, err
}

func (s *Server) inspectImage(w http.ResponseWriter, r *http.Request, name string) error {
	d, err := s.image(r, name)
	if err != nil {
		return err
	}
	resp := dimage.InspectResponse{ID: d.ID.String(), RepoTags: familiarAll(d.RepoTags), RepoDigests: familiarAll(d.RepoDigests),
		Size: d.Size, Os: d.Platform.OS, Architecture: d.Platform.Architecture, Variant: d.Platform.Variant,
		RootFS: dimage.RootFS{Type: "layers"}}
	if resp.RepoTags == nil {
		resp.RepoTags = []string{}
	}
	if resp.RepoDigests == nil {
		resp.RepoDigests = []string{}
	}
	if c := d.Config; c != nil {
		resp.Created = c.Created.UTC().Format("2006-01-02T15:04:05.999999999Z07:00")
		resp.Author = c.Author
		var cfg dockerspec.DockerOCIImageConfig
		if b, err := json.Marshal(c.Config); err == nil && json.Unmarshal(b, &cfg) == nil {
			resp.Config = &cfg
		}
		for _, l := range c.RootFS.DiffIDs {
			resp.RootFS.Layers = append(resp.RootFS.Layers, l.String())
		}
	}
	return writeJSON(w, http.StatusOK, resp)
}

func (s *Server) imageHistory(w http.ResponseWriter, r *http.Request, name string) error {
	d, err := s.image(r, name)
	if err != nil {
		return err
	}
	out := []dimage.HistoryResponseItem{}
	if d.Config != nil {
		layer := len(d.Layers) - 1
		hs := d.Config.History
		for i := len(hs) - 1; i >= 0; i-- {
			h := hs[i]
			it := dimage.HistoryResponseItem{ID: "<missing>", Created: h.Created.Unix(), CreatedBy: h.CreatedBy, Comment: h.Comment, Tags: []string{}}
			if !h.EmptyLayer && layer >= 0 {
				it.Size = d.Layers[layer].Size
				layer--
			}
			if i == len(hs)-1 {
				it.ID, it.Tags = d.ID.String(), familiarAll(d.RepoTags)
			}
			out = append(out, it)
		}
	}
	return writeJSON(w, http.StatusOK, out)
}

// POST /images/{name}/tag?repo=&tag=
func (s *Server) tagImage(w http.ResponseWriter, r *http.Request, name string) error {
	q := r.URL.Query()
	dst := q.Get("repo")
	if dst == "" {
		return invalid("repository name must have at least one component")
	}
	if t := q.Get("tag"); t != "" {
		dst += ":" + t
	}
	if _, err := s.image(r, name); err != nil {
		return err
	}
	if err := s.cfg.Images.Tag(r.Context(), name, dst); err != nil {
		return err
	}
	w.WriteHeader(http.StatusCreated)
	return nil
}

// POST /images/{name}/push?tag=
func (s *Server) pushImage(w http.ResponseWriter, r *http.Request, name string) error {
	if t := r.URL.Query().Get("tag"); t != "" {
		name += ":" + t
	}
	auth, err := registryAuth(r)
	if err != nil {
		return err
	}
	if _, err := s.image(r, name); err != nil {
		return err
	}
	ps := newProgressStream(w)
	n, tag := splitTag(name)
	ps.send(jsonstream.Message{Status: "The push refers to repository [" + n + "]"})
	res, err := s.cfg.Images.Push(r.Context(), api.PushRequest{Ref: name, Auth: auth}, ps.progress)
	if err != nil {
		ps.fail(err)
		return nil
	}
	ps.send(jsonstream.Message{Status: fmt.Sprintf("%s: digest: %s", tag, res.Digest)})
	return nil
}

// DELETE /images/{name}?force=
func (s *Server) removeImage(w http.ResponseWriter, r *http.Request, name string) error {
	d, err := s.image(r, name)
	if err != nil {
		return err
	}
	rep, err := s.cfg.Images.Remove(r.Context(), name, boolParam(r, "force"))
	if err != nil {
		if errors.Is(err, errdefs.ErrConflict) {
			return s.imageConflict(name, d.ID.String(), err)
		}
		return err
	}
	out := []dimage.DeleteResponse{}
	for _, u := range rep.Untagged {
		out = append(out, dimage.DeleteResponse{Untagged: familiar(u)})
	}
	for _, d := range rep.Deleted {
		out = append(out, dimage.DeleteResponse{Deleted: d.String()})
	}
	return writeJSON(w, http.StatusOK, out)
}

// POST /images/prune?filters={"dangling":{"false":true}}
func (s *Server) pruneImages(w http.ResponseWriter, r *http.Request) error {
	f, err := parseFilters(r, "dangling", "until", "label")
	if err != nil {
		return err
	}
	all := false
	for _, v := range f["dangling"] {
		all = all || v == "false" || v == "0"
	}
	rep, err := s.cfg.Images.Prune(r.Context(), all)
	if err != nil {
		return err
	}
	out := dimage.PruneReport{ImagesDeleted: []dimage.DeleteResponse{}, SpaceReclaimed: uint64(rep.BytesFreed)}
	for _, d := range rep.Deleted {
		out.ImagesDeleted = append(out.ImagesDeleted, dimage.DeleteResponse{Deleted: d.String()})
	}
	return writeJSON(w, http.StatusOK, out)
}

// POST /images/load?quiet=
func (s *Server) loadImages(w http.ResponseWriter, r *http.Request) error {
	loaded, err := s.cfg.Images.Load(r.Context(), r.Body)
	if err != nil {
		return err
	}
	ps := newProgressStream(w)
	for _, l := range loaded {
		if len(l.Refs) == 0 {
			ps.send(jsonstream.Message{Stream: "Loaded image ID: " + l.ID.String() + "\n"})
		}
		for _, ref := range l.Refs {
			ps.send(jsonstream.Message{Stream: "Loaded image: " + familiar(ref) + "\n"})
		}
	}
	return nil
}

// GET /images/get?names=a&names=b
func (s *Server) getImages(w http.ResponseWriter, r *http.Request) error {
	return s.saveImages(w, r, r.URL.Query()["names"])
}

func (s *Server) saveImages(w http.ResponseWriter, r *http.Request, names []string) error {
	if len(names) == 0 {
		return invalid("no image names given")
	}
	for _, n := range names {
		if _, err := s.image(r, n); err != nil {
			return err
		}
	}
	w.Header().Set("Content-Type", "application/x-tar")
	return s.cfg.Images.Save(r.Context(), w, names)
}

// imageConflict is dockerd's refusal to remove an image a container uses:
// by name, "unable to remove repository reference"; by ID, "unable to
// delete", naming the container (short IDs as dockerd prints them).
func (s *Server) imageConflict(name, id string, err error) error {
	short := strings.TrimPrefix(id, "sha256:")[:12]
	for _, m := range s.cfg.Machines.List("", true) {
		if m.ImageRef.Digest != id {
			continue
		}
		ctr := containerID(m.ID)[:12]
		if !strings.HasPrefix(id, name) && !strings.HasPrefix(strings.TrimPrefix(id, "sha256:"), name) {
			return conflict("conflict: unable to remove repository reference %q (must force) - container %s is using its referenced image %s", name, ctr, short)
		}
		if m.State == types.StateStarted || m.State == types.StateStarting {
			return conflict("conflict: unable to delete %s (cannot be forced) - image is being used by running container %s", short, ctr)
		}
		return conflict("conflict: unable to delete %s (must be forced) - image is being used by stopped container %s", short, ctr)
	}
	return conflict("conflict: unable to remove repository reference %q: %v", name, err)
}
