package image

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ferryvm/ferry/internal/errdefs"
	"github.com/ferryvm/ferry/internal/image/content"
	"github.com/ferryvm/ferry/internal/testimage"
	"github.com/ferryvm/ferry/internal/testutil/prereq"
)

// lie wraps a registry so requests for paths containing match get fn instead.
func lie(match string, fn func(w http.ResponseWriter, r *http.Request, next http.Handler)) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodGet && strings.Contains(r.URL.Path, match) {
				fn(w, r, next)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// recorded runs next and returns its response for editing.
func recorded(next http.Handler, r *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	next.ServeHTTP(rec, r)
	return rec
}

func assertUnchanged(t *testing.T, s *Store) {
	t.Helper()
	if n := blobCount(t, s); n != 0 {
		t.Errorf("%d blobs left behind", n)
	}
	if l := must[[]Summary](t)(s.List(context.Background())); len(l) != 0 {
		t.Errorf("images listed after a failed pull: %+v", l)
	}
}

func TestPullBadRegistry(t *testing.T) {
	img := must[v1.Image](t)(testimage.Random(50, 3, 64<<10))
	layers := must[[]v1.Layer](t)(img.Layers())
	victim := must[v1.Hash](t)(layers[1].Digest()).String()
	status := func(code int) func(http.ResponseWriter, *http.Request, http.Handler) {
		return func(w http.ResponseWriter, r *http.Request, _ http.Handler) {
			w.WriteHeader(code)
		}
	}
	cases := []struct {
		name  string
		match string
		fn    func(http.ResponseWriter, *http.Request, http.Handler)
		kind  error
		says  string
	}{
		{"corrupt blob", victim, func(w http.ResponseWriter, r *http.Request, next http.Handler) {
			rec := recorded(next, r)
			b := rec.Body.Bytes()
			b[len(b)/2] ^= 0xff
			w.WriteHeader(rec.Code)
			w.Write(b)
		}, errdefs.ErrInvalidArgument, "corrupt"},
		{"truncated blob", victim, func(w http.ResponseWriter, r *http.Request, next http.Handler) {
			b := recorded(next, r).Body.Bytes()
			w.Header().Set("Content-Length", fmt.Sprint(len(b)/2))
			w.Write(b[:len(b)/2])
		}, errdefs.ErrUnavailable, "truncated"},
		{"oversized blob", victim, func(w http.ResponseWriter, r *http.Request, next http.Handler) {
			b := recorded(next, r).Body.Bytes()
			w.Write(append(b, 'x'))
		}, errdefs.ErrInvalidArgument, "more than"},
		{"missing blob", victim, status(http.StatusNotFound), errdefs.ErrNotFound, "re-push"},
		{"manifest 404", "/manifests/", status(http.StatusNotFound), errdefs.ErrNotFound, "not found"},
		{"401", "/manifests/", status(http.StatusUnauthorized), errdefs.ErrUnauthorized, "ferry login"},
		{"403", "/manifests/", status(http.StatusForbidden), errdefs.ErrUnauthorized, "forbid"},
		{"429", victim, status(http.StatusTooManyRequests), errdefs.ErrUnavailable, "rate limit"},
		{"500", victim, status(http.StatusInternalServerError), errdefs.ErrUnavailable, "retry later"},
		{"unknown media type", "/manifests/", func(w http.ResponseWriter, r *http.Request, next http.Handler) {
			rec := recorded(next, r)
			b := strings.Replace(rec.Body.String(), "application/vnd.oci.image.layer.v1.tar+gzip", "application/x-mystery", 1)
			w.Header().Set("Content-Type", rec.Header().Get("Content-Type"))
			w.Write([]byte(b))
		}, errdefs.ErrInvalidArgument, "application/x-mystery"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			host := testimage.Serve(t, lie(tc.match, tc.fn))
			ref := testimage.Push(t, host, "bad/img:1", img)
			s, _ := newStore(t)
			_, err := s.Pull(context.Background(), ref)
			if !errors.Is(err, tc.kind) || !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("err = %v; want %v mentioning %q", err, tc.kind, tc.says)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error is not one line: %q", err)
			}
			assertUnchanged(t, s)
		})
	}
}

// A transfer cut off mid-blob resumes with a Range request.
func TestPullResumesWithRange(t *testing.T) {
	img := must[v1.Image](t)(testimage.Random(60, 1, 512<<10))
	layers := must[[]v1.Layer](t)(img.Layers())
	victim := must[v1.Hash](t)(layers[0].Digest())
	size := must[int64](t)(layers[0].Size())
	var calls, ranged atomic.Int32
	host := testimage.Serve(t, lie(victim.String(), func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		if calls.Add(1) == 1 {
			b := recorded(next, r).Body.Bytes()
			w.Header().Set("Content-Length", fmt.Sprint(len(b)))
			w.WriteHeader(http.StatusOK)
			w.Write(b[:len(b)/3])
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler) // cut the connection mid-body
		}
		if r.Header.Get("Range") != "" {
			ranged.Add(1)
		}
		next.ServeHTTP(w, r)
	}))
	ref := testimage.Push(t, host, "resume:1", img)
	s, _ := newStore(t)
	res, err := s.Pull(context.Background(), ref)
	if err != nil {
		t.Fatal(err)
	}
	if ranged.Load() != 1 {
		t.Errorf("retry did not use a Range request (calls %d)", calls.Load())
	}
	cfg := int64(len(must[[]byte](t)(img.RawConfigFile())))
	if res.BytesFetched < size+cfg || res.BytesFetched > size+cfg+size/2 {
		t.Errorf("fetched %d bytes for a %d-byte layer + %d config: the retry did not resume", res.BytesFetched, size, cfg)
	}
	if bad := must[[]v1.Hash](t)(s.Verify(context.Background())); len(bad) != 0 {
		t.Fatalf("verify: %v", bad)
	}
}

// A pull onto a full disk fails with one line naming the cause, and leaves
// nothing behind.
func TestPullDiskFull(t *testing.T) {
	prereq.Root(t, "to mount a small tmpfs")
	img := must[v1.Image](t)(testimage.Random(70, 2, 1<<20))
	host := testimage.Registry(t)
	ref := testimage.Push(t, host, "full:1", img)
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1200k", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", dir).Run() })
	s, _ := newStoreAt(t, dir)
	_, err := s.Pull(context.Background(), ref)
	if !errors.Is(err, content.ErrDiskFull) || !errors.Is(err, errdefs.ErrUnavailable) {
		t.Fatalf("err = %v, want disk full", err)
	}
	assertUnchanged(t, s)
	ents, _ := os.ReadDir(dir + "/content/ingest")
	if len(ents) != 0 {
		t.Errorf("ingest left %d files on a full disk", len(ents))
	}
}

// A failed pull leaves the cache as it was, yet its repeat does not fetch
// again the blobs the failed attempt had completed.
func TestFailedPullRetryFetchesOnlyTheRest(t *testing.T) {
	img := must[v1.Image](t)(testimage.Random(140, 3, 64<<10))
	layers := must[[]v1.Layer](t)(img.Layers())
	victim := must[v1.Hash](t)(layers[2].Digest())
	var broken atomic.Bool
	broken.Store(true)
	host := testimage.Serve(t, lie(victim.String(), func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		if broken.Load() {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		next.ServeHTTP(w, r)
	}))
	ref := testimage.Push(t, host, "retry:1", img)
	s, _ := newStore(t, WithJobs(1)) // sequential: config and two layers complete before the 404
	if _, err := s.Pull(context.Background(), ref); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("first pull: %v", err)
	}
	assertUnchanged(t, s)
	broken.Store(false)
	res := must[*PullResult](t)(s.Pull(context.Background(), ref))
	if want := must[int64](t)(layers[2].Size()); res.BytesFetched != want {
		t.Errorf("retry fetched %d bytes, want only the missing layer's %d", res.BytesFetched, want)
	}
	if bad := must[[]v1.Hash](t)(s.Verify(context.Background())); len(bad) != 0 {
		t.Fatalf("verify: %v", bad)
	}
}

// A transfer that stalls is abandoned after stallTimeout and resumed.
func TestPullStalledTransferResumes(t *testing.T) {
	old := stallTimeout
	stallTimeout = 300 * time.Millisecond
	t.Cleanup(func() { stallTimeout = old })
	img := must[v1.Image](t)(testimage.Random(170, 1, 256<<10))
	victim := must[v1.Hash](t)(must[[]v1.Layer](t)(img.Layers())[0].Digest())
	var calls atomic.Int32
	host := testimage.Serve(t, lie(victim.String(), func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		if calls.Add(1) == 1 {
			b := recorded(next, r).Body.Bytes()
			w.Header().Set("Content-Length", fmt.Sprint(len(b)))
			w.Write(b[:len(b)/2])
			w.(http.Flusher).Flush()
			<-r.Context().Done() // then hang until the client gives up
			return
		}
		next.ServeHTTP(w, r)
	}))
	ref := testimage.Push(t, host, "stall:1", img)
	s, _ := newStore(t)
	start := time.Now()
	if _, err := s.Pull(context.Background(), ref); err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("took %v", el)
	}
	if calls.Load() != 2 {
		t.Errorf("%d requests for the stalled blob, want 2", calls.Load())
	}
}
