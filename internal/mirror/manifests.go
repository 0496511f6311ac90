package mirror

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ferryvm/ferry/internal/errdefs"
	"github.com/ferryvm/ferry/internal/image"
)

var (
	component = regexp.MustCompile(`^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$`)
	tagRe     = regexp.MustCompile(`^[\w][\w.-]{0,127}$`)
)

func validRepo(repo string) bool {
	if repo == "" || len(repo) > 255 {
		return false
	}
	for _, c := range strings.Split(repo, "/") {
		if !component.MatchString(c) {
			return false
		}
	}
	return true
}

func (s *Server) manifest(w http.ResponseWriter, r *http.Request, repo, ref string) {
	if !validRepo(repo) {
		writeErr(w, http.StatusBadRequest, "NAME_INVALID", "invalid repository name "+strconv.Quote(repo))
		return
	}
	byDigest := strings.Contains(ref, ":")
	if !byDigest && !tagRe.MatchString(ref) {
		writeErr(w, http.StatusBadRequest, "TAG_INVALID", "invalid tag "+strconv.Quote(ref))
		return
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		s.getManifest(w, r, repo, ref, byDigest)
	case http.MethodPut:
		s.putManifest(w, r, repo, ref, byDigest)
	case http.MethodDelete:
		writeErr(w, http.StatusMethodNotAllowed, "UNSUPPORTED", "the mirror does not delete manifests: use ferry image rm")
	default:
		writeErr(w, http.StatusMethodNotAllowed, "UNSUPPORTED", "method not allowed")
	}
}

func (s *Server) getManifest(w http.ResponseWriter, r *http.Request, repo, ref string, byDigest bool) {
	var raw []byte
	if byDigest {
		d, err := v1.NewHash(ref)
		if err != nil {
			writeErr(w, http.StatusBadRequest, "DIGEST_INVALID", "invalid digest "+strconv.Quote(ref))
			return
		}
		// Only what could be a manifest is read into memory.
		if size, ierr := s.img.Content().Info(d); ierr != nil || size > MaxManifest {
			err = errdefs.ErrNotFound
		} else {
			raw, err = s.img.Content().ReadAll(d)
		}
		if err != nil {
			writeErr(w, http.StatusNotFound, "MANIFEST_UNKNOWN", "manifest unknown to the mirror: "+ref)
			return
		}
	} else {
		name, upstream := s.imageName(r, repo)
		tag := name + ":" + ref
		var err error
		raw, _, err = s.img.TaggedManifest(r.Context(), tag)
		if err != nil && upstream {
			// Pull-through: an upstream image the store lacks is pulled
			// into it, then served from it.
			if _, perr := s.img.Pull(r.Context(), tag); perr != nil {
				writeErr(w, http.StatusNotFound, "MANIFEST_UNKNOWN", "not in the mirror, and pulling it from upstream failed: "+perr.Error())
				return
			}
			raw, _, err = s.img.TaggedManifest(r.Context(), tag)
		}
		if err != nil {
			writeErr(w, http.StatusNotFound, "MANIFEST_UNKNOWN", "manifest unknown to the mirror: "+repo+":"+ref)
			return
		}
	}
	mt, ok := mediaTypeOf(raw)
	if !ok {
		writeErr(w, http.StatusNotFound, "MANIFEST_UNKNOWN", "not a manifest: "+ref)
		return
	}
	w.Header().Set("Content-Type", mt)
	w.Header().Set("Docker-Content-Digest", digestOf(raw).String())
	w.Header().Set("Content-Length", strconv.Itoa(len(raw)))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, _ = w.Write(raw)
	}
}

// putManifest stores a pushed manifest: an image manifest whose config and
// layers are all in the store becomes an image under its tag; an index (or
// another artifact manifest) is stored as a blob, retrievable by digest.
func (s *Server) putManifest(w http.ResponseWriter, r *http.Request, repo, ref string, byDigest bool) {
	raw, err := io.ReadAll(io.LimitReader(r.Body, MaxManifest+1))
	if err != nil {
		writeErr(w, http.StatusBadRequest, "MANIFEST_INVALID", "reading the manifest: "+err.Error())
		return
	}
	if len(raw) > MaxManifest {
		writeErr(w, http.StatusRequestEntityTooLarge, "SIZE_INVALID", "manifest over 4 MiB")
		return
	}
	d := digestOf(raw)
	if byDigest && ref != d.String() {
		writeErr(w, http.StatusBadRequest, "DIGEST_INVALID", "manifest hashes to "+d.String()+", not "+ref)
		return
	}
	var refs struct {
		Config    *v1.Descriptor  `json:"config"`
		Layers    []v1.Descriptor `json:"layers"`
		Manifests []v1.Descriptor `json:"manifests"`
	}
	if err := json.Unmarshal(raw, &refs); err != nil {
		writeErr(w, http.StatusBadRequest, "MANIFEST_INVALID", "manifest is not JSON: "+err.Error())
		return
	}
	cs := s.img.Content()
	var missing []string
	for _, l := range refs.Layers {
		if !cs.Has(l.Digest) {
			missing = append(missing, l.Digest.String())
		}
	}
	if refs.Config != nil && !cs.Has(refs.Config.Digest) {
		missing = append(missing, refs.Config.Digest.String())
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		writeErr(w, http.StatusBadRequest, "MANIFEST_BLOB_UNKNOWN", "manifest names blobs the mirror does not have (push them first): "+strings.Join(missing, ", "))
		return
	}
	name, upstream := s.imageName(r, repo)
	var names []string
	if !byDigest {
		names = []string{name + ":" + ref}
	}
	held := append(layerDigests(refs.Layers), layerDigests(refs.Manifests)...)
	if refs.Config != nil {
		held = append(held, refs.Config.Digest)
	}
	if m, _, perr := image.ParseManifest(raw); perr == nil {
		config, err := cs.ReadAll(m.Config.Digest)
		if err != nil {
			writeErr(w, http.StatusInternalServerError, "UNKNOWN", err.Error())
			return
		}
		sum, err := s.img.PutImage(r.Context(), raw, config, names)
		if err != nil {
			code := http.StatusInternalServerError
			if errors.Is(err, errdefs.ErrInvalidArgument) {
				code = http.StatusBadRequest
			}
			writeErr(w, code, "MANIFEST_INVALID", err.Error())
			return
		}
		s.releaseBlobs(r.Context(), held)
		s.log.Info("mirror: image pushed", "name", name, "ref", ref, "digest", d)
		s.queuePrepare(sum)
		if s.writeBack != nil && len(names) > 0 && upstream {
			if err := s.writeBack.Enqueue(r.Context(), names[0], names[0]); err != nil {
				writeErr(w, http.StatusInternalServerError, "UNKNOWN", "queueing the upstream push: "+err.Error())
				return
			}
		}
	} else if byDigest {
		// An index's child or an untagged artifact: leased like a blob
		// until a tagged manifest references it.
		if err := s.commitBlob(r.Context(), d, int64(len(raw)), bytes.NewReader(raw)); err != nil {
			writeErr(w, http.StatusInternalServerError, "UNKNOWN", err.Error())
			return
		}
	} else {
		// An index or an artifact under a tag: kept, with what it references.
		if _, err := s.img.PutManifest(r.Context(), raw, names); err != nil {
			code := http.StatusInternalServerError
			if errors.Is(err, errdefs.ErrInvalidArgument) {
				code = http.StatusBadRequest
			}
			writeErr(w, code, "MANIFEST_INVALID", err.Error())
			return
		}
		s.releaseBlobs(r.Context(), append(held, d))
		s.log.Info("mirror: manifest pushed", "name", name, "ref", ref, "digest", d)
	}
	w.Header().Set("Location", "/v2/"+repo+"/manifests/"+d.String())
	w.Header().Set("Docker-Content-Digest", d.String())
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusCreated)
}

// tags lists the tags the store holds under repo's image name.
func (s *Server) tags(w http.ResponseWriter, r *http.Request, repo string) {
	if !validRepo(repo) {
		writeErr(w, http.StatusBadRequest, "NAME_INVALID", "invalid repository name "+strconv.Quote(repo))
		return
	}
	name, _ := s.imageName(r, repo)
	canon, err := image.CanonicalString(name + ":x")
	if err != nil {
		writeErr(w, http.StatusBadRequest, "NAME_INVALID", err.Error())
		return
	}
	prefix := strings.TrimSuffix(canon, "x")
	list, err := s.img.List(r.Context())
	if err != nil {
		writeErr(w, http.StatusInternalServerError, "UNKNOWN", err.Error())
		return
	}
	others, err := s.img.ManifestTags(r.Context())
	if err != nil {
		writeErr(w, http.StatusInternalServerError, "UNKNOWN", err.Error())
		return
	}
	for _, im := range list {
		others = append(others, im.RepoTags...)
	}
	tags := []string{}
	for _, t := range others {
		if tag, ok := strings.CutPrefix(t, prefix); ok {
			tags = append(tags, tag)
		}
	}
	if len(tags) == 0 {
		writeErr(w, http.StatusNotFound, "NAME_UNKNOWN", "repository unknown to the mirror: "+repo)
		return
	}
	sort.Strings(tags)
	if last := r.URL.Query().Get("last"); last != "" {
		tags = tags[sort.Search(len(tags), func(i int) bool { return tags[i] > last }):]
	}
	if n, err := strconv.Atoi(r.URL.Query().Get("n")); err == nil && n >= 0 && n < len(tags) {
		tags = tags[:n]
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"name": repo, "tags": tags})
}

// mediaTypeOf is the media type a stored manifest is served with: its
// own mediaType field, else what its shape says (OCI allows no field).
func mediaTypeOf(raw []byte) (string, bool) {
	var p struct {
		MediaType string `json:"mediaType"`
	}
	if json.Unmarshal(raw, &p) != nil {
		return "", false
	}
	if p.MediaType != "" {
		return p.MediaType, true
	}
	mt, err := image.Sniff(raw)
	return string(mt), err == nil
}

func layerDigests(ds []v1.Descriptor) []v1.Hash {
	out := make([]v1.Hash, 0, len(ds)+1)
	for _, d := range ds {
		out = append(out, d.Digest)
	}
	return out
}

func digestOf(b []byte) v1.Hash {
	h := sha256.Sum256(b)
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(h[:])}
}

// writeErr writes a distribution-spec error body.
func writeErr(w http.ResponseWriter, code int, kind, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]any{"errors": []map[string]string{{"code": kind, "message": msg}}})
}
