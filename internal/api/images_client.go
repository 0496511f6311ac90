package api

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/ferryvm/ferry/internal/errdefs"
	"github.com/ferryvm/ferry/internal/image"
)

// The typed client methods of the image API (see images.go).

// Pull asks the daemon to pull req.Ref, calling progress (if non-nil) for
// each progress event, and returns the result.
func (c *Client) Pull(ctx context.Context, req PullRequest, progress func(image.Progress)) (image.PullResult, error) {
	var res *image.PullResult
	err := c.Stream(ctx, "POST", "/v1/images/pull", req, func(raw json.RawMessage) error {
		var ev PullEvent
		if err := json.Unmarshal(raw, &ev); err != nil {
			return fmt.Errorf("pull %s: bad event from daemon: %w", req.Ref, err)
		}
		if ev.Progress != nil && progress != nil {
			progress(*ev.Progress)
		}
		if ev.Result != nil {
			res = ev.Result
		}
		return nil
	})
	if err != nil {
		return image.PullResult{}, err
	}
	if res == nil {
		return image.PullResult{}, fmt.Errorf("pull %s: the daemon ended the stream without a result (did it stop?): %w", req.Ref, errdefs.ErrUnavailable)
	}
	return *res, nil
}

// Push asks the daemon to push the cached image req.Ref to its registry.
func (c *Client) Push(ctx context.Context, req PushRequest, progress func(image.Progress)) (PushResult, error) {
	var res *PushResult
	err := c.Stream(ctx, "POST", "/v1/images/push", req, func(raw json.RawMessage) error {
		var ev PullEvent
		if err := json.Unmarshal(raw, &ev); err != nil {
			return fmt.Errorf("push %s: bad event from daemon: %w", req.Ref, err)
		}
		if ev.Progress != nil && progress != nil {
			progress(*ev.Progress)
		}
		if ev.Pushed != nil {
			res = ev.Pushed
		}
		return nil
	})
	if err != nil {
		return PushResult{}, err
	}
	if res == nil {
		return PushResult{}, fmt.Errorf("push %s: the daemon ended the stream without a result (did it stop?): %w", req.Ref, errdefs.ErrUnavailable)
	}
	return *res, nil
}

// Images lists cached images (all: dangling ones too).
func (c *Client) Images(ctx context.Context, all bool) ([]image.Summary, error) {
	var out []image.Summary
	return out, c.Do(ctx, "GET", "/v1/images"+query("all", all), nil, &out)
}

// InspectImage returns the details of the image ref names.
func (c *Client) InspectImage(ctx context.Context, ref string) (image.Details, error) {
	var out image.Details
	return out, c.Do(ctx, "GET", "/v1/images/"+escapeRef(ref), nil, &out)
}

// RemoveImage untags ref and deletes the image when nothing else names it
// (force: even when other references or leases hold it).
func (c *Client) RemoveImage(ctx context.Context, ref string, force bool) (image.RemoveReport, error) {
	var out image.RemoveReport
	return out, c.Do(ctx, "DELETE", "/v1/images/"+escapeRef(ref)+query("force", force), nil, &out)
}

// TagImage makes target name the image source names.
func (c *Client) TagImage(ctx context.Context, source, target string) error {
	return c.Do(ctx, "POST", "/v1/images/tag", TagRequest{Source: source, Target: target}, nil)
}

// PruneImages removes dangling images (all: every image no lease holds) and
// unreferenced blobs.
func (c *Client) PruneImages(ctx context.Context, all bool) (image.PruneReport, error) {
	var out image.PruneReport
	return out, c.Do(ctx, "POST", "/v1/images/prune"+query("all", all), nil, &out)
}

// LoadImages streams a tar (OCI layout or docker save) to the daemon.
func (c *Client) LoadImages(ctx context.Context, tar io.Reader) ([]image.Loaded, error) {
	var out []image.Loaded
	return out, c.Do(ctx, "POST", "/v1/images/load", tar, &out)
}

// SaveImages writes an OCI layout tar of the named images to w.
func (c *Client) SaveImages(ctx context.Context, w io.Writer, refs []string) error {
	resp, err := c.send(ctx, "POST", "/v1/images/save", SaveRequest{Refs: refs}, nil)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	if _, err := io.Copy(w, resp.Body); err != nil {
		return fmt.Errorf("save: %w", err)
	}
	if msg := resp.Trailer.Get(saveErrorTrailer); msg != "" {
		code, text, _ := strings.Cut(msg, " ")
		return &Error{Status: http.StatusInternalServerError, Code: code, Message: text}
	}
	return nil
}

// VerifyImages re-hashes every cached blob and checks every image's blobs.
func (c *Client) VerifyImages(ctx context.Context) (image.CheckReport, error) {
	var out image.CheckReport
	return out, c.Do(ctx, "POST", "/v1/images/verify", nil, &out)
}

func query(name string, on bool) string {
	if !on {
		return ""
	}
	return "?" + name + "=1"
}

// escapeRef escapes each path segment of a reference (which may hold '/',
// ':' and '@').
func escapeRef(ref string) string {
	segs := strings.Split(ref, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return strings.Join(segs, "/")
}
