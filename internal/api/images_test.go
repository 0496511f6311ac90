package api

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ferryvm/ferry/internal/errdefs"
	"github.com/ferryvm/ferry/internal/image"
)

// fakeImages is an in-memory ImageService recording what it was asked.
type fakeImages struct {
	mu       sync.Mutex
	pullReq  PullRequest
	loadSeen chan []byte // first chunk a Load received
	saveFail bool
}

var digestA = v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("a", 64)}

func (f *fakeImages) Pull(ctx context.Context, req PullRequest, progress image.ProgressFunc) (image.PullResult, error) {
	f.mu.Lock()
	f.pullReq = req
	f.mu.Unlock()
	if req.Ref == "missing" {
		progress(image.Progress{Ref: req.Ref, Digest: digestA, Kind: "layer", Total: 10, State: image.StateWaiting})
		return image.PullResult{}, fmt.Errorf("pull missing: manifest unknown: %w", errdefs.ErrNotFound)
	}
	for i := int64(0); i <= 10; i += 5 {
		progress(image.Progress{Ref: req.Ref, Digest: digestA, Kind: "layer", Total: 10, Done: i, State: image.StateDownloading})
	}
	progress(image.Progress{Ref: req.Ref, Digest: digestA, Kind: "layer", Total: 10, Done: 10, State: image.StateDone})
	return image.PullResult{Ref: req.Ref, BytesFetched: 10, BlobsFetched: 1, Image: image.Summary{ID: digestA}}, nil
}

func (f *fakeImages) Push(ctx context.Context, req PushRequest, progress image.ProgressFunc) (PushResult, error) {
	progress(image.Progress{Ref: req.Ref, Digest: digestA, State: image.StateExists})
	return PushResult{Ref: req.Ref, Digest: digestA.String()}, nil
}

func (f *fakeImages) List(ctx context.Context, all bool) ([]image.Summary, error) {
	if !all {
		return nil, nil
	}
	return []image.Summary{{ID: digestA, RepoTags: []string{"docker.io/library/a:latest"}}}, nil
}

func (f *fakeImages) Inspect(ctx context.Context, ref string) (image.Details, error) {
	if ref != "localhost:5000/x/y:1" {
		return image.Details{}, fmt.Errorf("image %s: %w", ref, errdefs.ErrNotFound)
	}
	return image.Details{Summary: image.Summary{ID: digestA, RepoTags: []string{ref}}, ConfigDigest: digestA}, nil
}

func (f *fakeImages) Tag(ctx context.Context, src, dst string) error {
	if dst == "" {
		return fmt.Errorf("tag: empty target: %w", errdefs.ErrInvalidArgument)
	}
	return nil
}

func (f *fakeImages) Remove(ctx context.Context, ref string, force bool) (image.RemoveReport, error) {
	if !force {
		return image.RemoveReport{}, fmt.Errorf("image %s is in use: %w", ref, errdefs.ErrConflict)
	}
	return image.RemoveReport{Untagged: []string{ref}}, nil
}

func (f *fakeImages) Prune(ctx context.Context, all bool) (image.PruneReport, error) {
	return image.PruneReport{BytesFreed: 42}, nil
}

func (f *fakeImages) Load(ctx context.Context, r io.Reader) ([]image.Loaded, error) {
	buf := make([]byte, 5)
	if _, err := io.ReadFull(r, buf); err != nil {
		return nil, err
	}
	f.loadSeen <- buf
	rest, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	return []image.Loaded{{ID: digestA, Refs: []string{string(buf) + string(rest)}}}, nil
}

func (f *fakeImages) Save(ctx context.Context, w io.Writer, refs []string) error {
	if refs[0] == "nope" {
		return fmt.Errorf("image nope: %w", errdefs.ErrNotFound)
	}
	_, _ = io.WriteString(w, "TARDATA:"+strings.Join(refs, ","))
	if f.saveFail {
		return fmt.Errorf("read blob: disk gone: %w", errdefs.ErrUnavailable)
	}
	return nil
}

func (f *fakeImages) Verify(ctx context.Context) (image.CheckReport, error) {
	return image.CheckReport{Blobs: 3, Corrupt: []image.BlobProblem{{Digest: digestA.String(), Reason: "digest mismatch"}}}, nil
}

func (f *fakeImages) Subscribe() (<-chan image.Event, func()) {
	ch := make(chan image.Event)
	return ch, func() { close(ch) }
}

func (f *fakeImages) RecentEvents(time.Time) []image.Event { return nil }

func imageClient(t *testing.T) (*Client, *fakeImages) {
	f := &fakeImages{loadSeen: make(chan []byte, 1)}
	s := NewServer(nil)
	RegisterImages(s, f)
	return serve(t, s, ""), f
}

func TestPullStreamsProgressThenResult(t *testing.T) {
	c, f := imageClient(t)
	var events []image.Progress
	res, err := c.Pull(context.Background(), PullRequest{Ref: "alpine", Auth: &RegistryAuth{Username: "u", Password: "p"}},
		func(p image.Progress) { events = append(events, p) })
	if err != nil {
		t.Fatal(err)
	}
	if res.BytesFetched != 10 || res.Image.ID != digestA {
		t.Fatalf("result = %+v", res)
	}
	if len(events) < 2 || events[len(events)-1].State != image.StateDone {
		t.Fatalf("events = %+v", events)
	}
	if f.pullReq.Auth == nil || f.pullReq.Auth.Password != "p" {
		t.Fatalf("credentials did not reach the service: %+v", f.pullReq)
	}
}

func TestPullErrorKeepsKind(t *testing.T) {
	c, _ := imageClient(t)
	_, err := c.Pull(context.Background(), PullRequest{Ref: "missing"}, nil)
	if !errors.Is(err, errdefs.ErrNotFound) || !strings.Contains(err.Error(), "manifest unknown") {
		t.Fatalf("want not found, got %v", err)
	}
}

func TestCredentialsNeverPrinted(t *testing.T) {
	a := &RegistryAuth{Username: "u", Password: "hunter2", IdentityToken: "tok"}
	for _, s := range []string{fmt.Sprint(a), fmt.Sprintf("%v %+v %#v %s", *a, *a, *a, *a), fmt.Sprintf("%+v", PullRequest{Auth: a})} {
		if strings.Contains(s, "hunter2") || strings.Contains(s, "tok") {
			t.Fatalf("credentials printed: %s", s)
		}
	}
}

func TestImageVerbs(t *testing.T) {
	c, _ := imageClient(t)
	ctx := context.Background()
	if l, err := c.Images(ctx, false); err != nil || l == nil || len(l) != 0 {
		t.Fatalf("images = %v, %v (want an empty, non-nil list)", l, err)
	}
	if l, err := c.Images(ctx, true); err != nil || len(l) != 1 {
		t.Fatalf("images -a = %v, %v", l, err)
	}
	if d, err := c.InspectImage(ctx, "localhost:5000/x/y:1"); err != nil || d.ID != digestA {
		t.Fatalf("inspect = %+v, %v", d, err)
	}
	if _, err := c.InspectImage(ctx, "other@sha256:"+digestA.Hex); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("inspect missing: %v", err)
	}
	if err := c.TagImage(ctx, "a", ""); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("tag: %v", err)
	}
	if _, err := c.RemoveImage(ctx, "a", false); !errors.Is(err, errdefs.ErrConflict) {
		t.Fatalf("rmi: %v", err)
	}
	if r, err := c.RemoveImage(ctx, "localhost:5000/a:1", true); err != nil || r.Untagged[0] != "localhost:5000/a:1" {
		t.Fatalf("rmi -f = %+v, %v", r, err)
	}
	if r, err := c.PruneImages(ctx, true); err != nil || r.BytesFreed != 42 {
		t.Fatalf("prune = %+v, %v", r, err)
	}
	if r, err := c.VerifyImages(ctx); err != nil || r.OK() {
		t.Fatalf("verify = %+v, %v", r, err)
	}
	if r, err := c.Push(ctx, PushRequest{Ref: "a"}, nil); err != nil || r.Digest != digestA.String() {
		t.Fatalf("push = %+v, %v", r, err)
	}
}

// TestLoadStreams checks the daemon starts reading before the client has
// sent the whole tar (the body is streamed, not buffered).
func TestLoadStreams(t *testing.T) {
	c, f := imageClient(t)
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	var loaded []image.Loaded
	go func() {
		var err error
		loaded, err = c.LoadImages(context.Background(), pr)
		done <- err
	}()
	_, _ = pw.Write([]byte("first"))
	select {
	case got := <-f.loadSeen:
		if string(got) != "first" {
			t.Fatalf("first chunk = %q", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("daemon saw nothing before the body ended: load is buffered")
	}
	_, _ = pw.Write([]byte("-rest"))
	pw.Close()
	if err := <-done; err != nil || loaded[0].Refs[0] != "first-rest" {
		t.Fatalf("load = %+v, %v", loaded, err)
	}
}

func TestSaveBodyAndErrors(t *testing.T) {
	c, f := imageClient(t)
	ctx := context.Background()
	var buf bytes.Buffer
	if err := c.SaveImages(ctx, &buf, []string{"a", "b"}); err != nil || buf.String() != "TARDATA:a,b" {
		t.Fatalf("save = %q, %v", buf.String(), err)
	}
	if err := c.SaveImages(ctx, io.Discard, []string{"nope"}); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("save of a missing image: %v", err)
	}
	if err := c.SaveImages(ctx, io.Discard, nil); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("save of nothing: %v", err)
	}
	f.saveFail = true
	if err := c.SaveImages(ctx, io.Discard, []string{"a"}); !errors.Is(err, errdefs.ErrUnavailable) || !strings.Contains(err.Error(), "disk gone") {
		t.Fatalf("save failing mid-stream: want the trailer's error, got %v", err)
	}
}
