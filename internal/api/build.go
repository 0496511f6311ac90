package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/ferryvm/ferry/internal/build"
	"github.com/ferryvm/ferry/internal/build/secretscan"
	"github.com/ferryvm/ferry/internal/errdefs"
)

// The build API (the daemon side of `ferry build` and `ferry image scan`):
//
//	POST /v1/build        body: a BuildRequest as one JSON line, then the build
//	                      context as a tar stream → NDJSON of BuildEvent, the last
//	                      with Result
//	POST /v1/images/scan  ScanRequest → []secretscan.Finding
//	POST /v1/build/prune  BuildPruneRequest → build.PruneReport
//
// The context is received (and written to disk) before the first event;
// secrets travel in the request body only, never in a URL or a log.

// MaxBuildRequest bounds the request line (Dockerfile, secrets and all).
const MaxBuildRequest = 32 << 20

// BuildRequest is one build.
type BuildRequest struct {
	// Dockerfile is the Dockerfile's content; empty: read DockerfilePath
	// (default "Dockerfile") from the context.
	Dockerfile     []byte `json:"dockerfile,omitempty"`
	DockerfilePath string `json:"dockerfile_path,omitempty"`
	// Ignore is the content of a Dockerfile-specific ignore file
	// (<Dockerfile>.dockerignore); absent: the context's .dockerignore.
	Ignore        []byte            `json:"ignore,omitempty"`
	Tags          []string          `json:"tags,omitempty"`
	BuildArgs     map[string]string `json:"build_args,omitempty"`
	Target        string            `json:"target,omitempty"`
	NoCache       bool              `json:"no_cache,omitempty"`
	Pull          bool              `json:"pull,omitempty"`
	Labels        map[string]string `json:"labels,omitempty"`
	Secrets       map[string][]byte `json:"secrets,omitempty"`
	Network       string            `json:"network,omitempty"`  // default, none
	Platform      string            `json:"platform,omitempty"` // os/arch
	FailOnSecrets bool              `json:"fail_on_secrets,omitempty"`
	Push          bool              `json:"push,omitempty"`
	PushAuth      *RegistryAuth     `json:"push_auth,omitempty"`
}

// BuildEvent is one value of a build stream: a progress event, or (last)
// the result.
type BuildEvent struct {
	build.Event
	Result *build.Result `json:"result,omitempty"`
}

// ScanRequest names the image to scan.
type ScanRequest struct {
	Ref string `json:"ref"`
}

// BuildPruneRequest drops step-cache records unused for OlderThan (0: all).
type BuildPruneRequest struct {
	OlderThan time.Duration `json:"older_than,omitempty"`
}

// BuildService is what the build handlers need.
type BuildService interface {
	Build(ctx context.Context, req BuildRequest, contextTar io.Reader, emit func(build.Event)) (*build.Result, error)
	Scan(ctx context.Context, ref string) ([]secretscan.Finding, error)
	Prune(ctx context.Context, olderThan time.Duration) (*build.PruneReport, error)
}

// RegisterBuild adds the build routes to s.
func RegisterBuild(s *Server, svc BuildService) {
	s.Handle("POST /v1/build", func(w http.ResponseWriter, r *http.Request) error {
		// Events may go out while the context is still coming in.
		_ = http.NewResponseController(w).EnableFullDuplex()
		br := bufio.NewReaderSize(r.Body, 64<<10)
		line, err := readLine(br, MaxBuildRequest)
		if err != nil {
			return err
		}
		var req BuildRequest
		dec := json.NewDecoder(bytes.NewReader(line))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			return fmt.Errorf("build request: %s: %w", describeJSONError(err), errdefs.ErrInvalidArgument)
		}
		var st *Stream
		var mu sync.Mutex
		emit := func(ev build.Event) {
			mu.Lock()
			defer mu.Unlock()
			if st == nil {
				st = NewStream(w)
			}
			_ = st.Send(BuildEvent{Event: ev})
		}
		res, err := svc.Build(r.Context(), req, br, emit)
		mu.Lock()
		defer mu.Unlock()
		if st == nil {
			if err != nil {
				return err // no event yet: a plain error reply
			}
			st = NewStream(w)
		}
		if err != nil {
			return st.Fail(err)
		}
		return st.Send(BuildEvent{Result: res})
	})
	s.Handle("POST /v1/build/prune", func(w http.ResponseWriter, r *http.Request) error {
		var req BuildPruneRequest
		if err := DecodeJSON(r, &req); err != nil {
			return err
		}
		rep, err := svc.Prune(r.Context(), req.OlderThan)
		if err != nil {
			return err
		}
		return WriteJSON(w, http.StatusOK, rep)
	})
	s.Handle("POST /v1/images/scan", func(w http.ResponseWriter, r *http.Request) error {
		var req ScanRequest
		if err := DecodeJSON(r, &req); err != nil {
			return err
		}
		fs, err := svc.Scan(r.Context(), req.Ref)
		if err != nil {
			return err
		}
		if fs == nil {
			fs = []secretscan.Finding{}
		}
		return WriteJSON(w, http.StatusOK, fs)
	})
}

// readLine reads one newline-terminated line of at most max bytes.
func readLine(br *bufio.Reader, max int) ([]byte, error) {
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		line = append(line, chunk...)
		if len(line) > max {
			return nil, fmt.Errorf("build request: over %d bytes: %w", max, errdefs.ErrInvalidArgument)
		}
		if err == nil {
			return line, nil
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			return nil, fmt.Errorf("build request: %w: %w", err, errdefs.ErrInvalidArgument)
		}
	}
}

// Build sends req and the context tar, calling emit for each event, and
// returns the result.
func (c *Client) Build(ctx context.Context, req BuildRequest, contextTar io.Reader, emit func(build.Event)) (*build.Result, error) {
	line, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	body := io.MultiReader(bytes.NewReader(append(line, '\n')), contextTar)
	var res *build.Result
	err = c.Stream(ctx, "POST", "/v1/build", body, func(raw json.RawMessage) error {
		var ev BuildEvent
		if err := json.Unmarshal(raw, &ev); err != nil {
			return fmt.Errorf("build: bad event from daemon: %w", err)
		}
		if ev.Result != nil {
			res = ev.Result
			return nil
		}
		if emit != nil {
			emit(ev.Event)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if res == nil {
		return nil, fmt.Errorf("build: the daemon ended the stream without a result (did it stop?): %w", errdefs.ErrUnavailable)
	}
	return res, nil
}

// ScanImage runs the secret scan on a cached image.
func (c *Client) ScanImage(ctx context.Context, ref string) ([]secretscan.Finding, error) {
	var out []secretscan.Finding
	return out, c.Do(ctx, "POST", "/v1/images/scan", ScanRequest{Ref: ref}, &out)
}

// PruneBuildCache drops step-cache records unused for olderThan (0: all).
func (c *Client) PruneBuildCache(ctx context.Context, olderThan time.Duration) (build.PruneReport, error) {
	var out build.PruneReport
	return out, c.Do(ctx, "POST", "/v1/build/prune", BuildPruneRequest{OlderThan: olderThan}, &out)
}
