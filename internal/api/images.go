package api

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ferryvm/ferry/internal/errdefs"
	"github.com/ferryvm/ferry/internal/image"
)

// The image API (the daemon side of `ferry pull / push / images / image
// inspect / tag / rmi / image prune / load / save / image verify`):
//
//	POST   /v1/images/pull     PullRequest → NDJSON of PullEvent, the last with Result
//	POST   /v1/images/push     PushRequest → NDJSON of PullEvent (progress only)
//	GET    /v1/images?all=1    → []image.Summary
//	GET    /v1/images/{ref...} → image.Details
//	DELETE /v1/images/{ref...}?force=1 → image.RemoveReport
//	POST   /v1/images/tag      TagRequest
//	POST   /v1/images/prune?all=1 → image.PruneReport
//	POST   /v1/images/load     body: a tar (OCI layout or docker save) → []image.Loaded
//	POST   /v1/images/save     SaveRequest → body: an OCI layout tar
//	POST   /v1/images/verify   → image.CheckReport
//
// Registry credentials travel in the request body of pull and push (never in
// a URL or a log), resolved by the CLI from its own keychain.

// ImageService is what the image handlers need from the daemon's image cache.
type ImageService interface {
	Pull(ctx context.Context, req PullRequest, progress image.ProgressFunc) (image.PullResult, error)
	Push(ctx context.Context, req PushRequest, progress image.ProgressFunc) (PushResult, error)
	List(ctx context.Context, all bool) ([]image.Summary, error)
	Inspect(ctx context.Context, ref string) (image.Details, error)
	Tag(ctx context.Context, src, dst string) error
	Remove(ctx context.Context, ref string, force bool) (image.RemoveReport, error)
	Prune(ctx context.Context, all bool) (image.PruneReport, error)
	Load(ctx context.Context, r io.Reader) ([]image.Loaded, error)
	Save(ctx context.Context, w io.Writer, refs []string) error
	Verify(ctx context.Context) (image.CheckReport, error)
	// Subscribe delivers the image cache's events from now on (the
	// channel closes when the returned function is called).
	Subscribe() (<-chan image.Event, func())
	// RecentEvents returns the retained events at or after since.
	RecentEvents(since time.Time) []image.Event
}

// RegistryAuth is a caller's credentials for one registry. Its String and
// LogValue never reveal them.
type RegistryAuth struct {
	Username      string `json:"username,omitempty"`
	Password      string `json:"password,omitempty"`
	IdentityToken string `json:"identity_token,omitempty"`
	RegistryToken string `json:"registry_token,omitempty"`
}

func (RegistryAuth) String() string { return "[credentials redacted]" }

// GoString keeps %#v from printing the credentials too.
func (RegistryAuth) GoString() string { return "[credentials redacted]" }

// PullRequest asks the daemon to pull Ref.
type PullRequest struct {
	Ref      string `json:"ref"`
	Platform string `json:"platform,omitempty"` // os/arch[/variant]; "" = the daemon's
	// InsecureRegistries are registries the caller wants reached over plain HTTP.
	InsecureRegistries []string      `json:"insecure_registries,omitempty"`
	Auth               *RegistryAuth `json:"auth,omitempty"` // nil: the daemon's own keychain
}

// PushRequest asks the daemon to push the cached image Ref to its registry.
type PushRequest struct {
	Ref                string        `json:"ref"`
	InsecureRegistries []string      `json:"insecure_registries,omitempty"`
	Auth               *RegistryAuth `json:"auth,omitempty"`
}

// PullEvent is one value of a pull or push stream: a progress event, or
// (last) the result.
type PullEvent struct {
	Progress *image.Progress   `json:"progress,omitempty"`
	Result   *image.PullResult `json:"result,omitempty"` // pull
	Pushed   *PushResult       `json:"pushed,omitempty"` // push
}

// PushResult is what a push uploaded.
type PushResult struct {
	Ref    string `json:"ref"`    // canonical reference pushed
	Digest string `json:"digest"` // manifest digest in the registry
}

// TagRequest points Target at the image Source names.
type TagRequest struct {
	Source string `json:"source"`
	Target string `json:"target"`
}

// SaveRequest names the images to save into one OCI layout tar.
type SaveRequest struct {
	Refs []string `json:"refs"`
}

// saveErrorTrailer carries an error that happened after a save's tar began.
const saveErrorTrailer = "X-Ferry-Error"

// RegisterImages adds the image routes to s.
func RegisterImages(s *Server, svc ImageService) {
	s.Handle("POST /v1/images/pull", func(w http.ResponseWriter, r *http.Request) error {
		var req PullRequest
		if err := DecodeJSON(r, &req); err != nil {
			return err
		}
		st := NewStream(w)
		res, err := svc.Pull(r.Context(), req, throttle(st))
		if err != nil {
			return st.Fail(err)
		}
		return st.Send(PullEvent{Result: &res})
	})
	s.Handle("POST /v1/images/push", func(w http.ResponseWriter, r *http.Request) error {
		var req PushRequest
		if err := DecodeJSON(r, &req); err != nil {
			return err
		}
		st := NewStream(w)
		res, err := svc.Push(r.Context(), req, throttle(st))
		if err != nil {
			return st.Fail(err)
		}
		return st.Send(PullEvent{Pushed: &res})
	})
	s.Handle("GET /v1/images", func(w http.ResponseWriter, r *http.Request) error {
		list, err := svc.List(r.Context(), boolParam(r, "all"))
		if err != nil {
			return err
		}
		if list == nil {
			list = []image.Summary{}
		}
		return WriteJSON(w, http.StatusOK, list)
	})
	s.Handle("GET /v1/images/{ref...}", func(w http.ResponseWriter, r *http.Request) error {
		d, err := svc.Inspect(r.Context(), r.PathValue("ref"))
		if err != nil {
			return err
		}
		return WriteJSON(w, http.StatusOK, d)
	})
	s.Handle("DELETE /v1/images/{ref...}", func(w http.ResponseWriter, r *http.Request) error {
		rep, err := svc.Remove(r.Context(), r.PathValue("ref"), boolParam(r, "force"))
		if err != nil {
			return err
		}
		return WriteJSON(w, http.StatusOK, rep)
	})
	s.Handle("POST /v1/images/tag", func(w http.ResponseWriter, r *http.Request) error {
		var req TagRequest
		if err := DecodeJSON(r, &req); err != nil {
			return err
		}
		if err := svc.Tag(r.Context(), req.Source, req.Target); err != nil {
			return err
		}
		return WriteJSON(w, http.StatusOK, struct{}{})
	})
	s.Handle("POST /v1/images/prune", func(w http.ResponseWriter, r *http.Request) error {
		rep, err := svc.Prune(r.Context(), boolParam(r, "all"))
		if err != nil {
			return err
		}
		return WriteJSON(w, http.StatusOK, rep)
	})
	s.Handle("POST /v1/images/load", func(w http.ResponseWriter, r *http.Request) error {
		loaded, err := svc.Load(r.Context(), r.Body)
		if err != nil {
			return err
		}
		return WriteJSON(w, http.StatusOK, loaded)
	})
	s.Handle("POST /v1/images/save", func(w http.ResponseWriter, r *http.Request) error {
		var req SaveRequest
		if err := DecodeJSON(r, &req); err != nil {
			return err
		}
		if len(req.Refs) == 0 {
			return fmt.Errorf("save: name at least one image: %w", errdefs.ErrInvalidArgument)
		}
		w.Header().Set("Content-Type", "application/x-tar")
		w.Header().Set("Trailer", saveErrorTrailer)
		if err := svc.Save(r.Context(), w, req.Refs); err != nil {
			w.Header().Set(saveErrorTrailer, errdefs.Code(err)+" "+strings.ReplaceAll(err.Error(), "\n", " "))
			return err // a JSON reply when nothing was written yet
		}
		return nil
	})
	s.Handle("POST /v1/images/verify", func(w http.ResponseWriter, r *http.Request) error {
		rep, err := svc.Verify(r.Context())
		if err != nil {
			return err
		}
		return WriteJSON(w, http.StatusOK, rep)
	})
}

func boolParam(r *http.Request, name string) bool {
	b, _ := strconv.ParseBool(r.URL.Query().Get(name))
	return b
}

// throttle returns a ProgressFunc that sends events on st, safe for
// concurrent use, dropping in-between byte counts of one blob that come
// less than 100ms apart (state changes and completions always go out).
func throttle(st *Stream) image.ProgressFunc {
	var mu sync.Mutex
	last := map[string]struct {
		at    time.Time
		state image.State
	}{}
	return func(p image.Progress) {
		mu.Lock()
		defer mu.Unlock()
		key := p.Digest.String()
		prev, seen := last[key]
		now := time.Now()
		if seen && prev.state == p.State && p.Done != p.Total && now.Sub(prev.at) < 100*time.Millisecond {
			return
		}
		last[key] = struct {
			at    time.Time
			state image.State
		}{now, p.State}
		_ = st.Send(PullEvent{Progress: &p})
	}
}
