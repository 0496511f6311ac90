package image

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"go.etcd.io/bbolt"

	"github.com/ferryvm/ferry/internal/paths"
	"github.com/ferryvm/ferry/internal/testimage"
	"github.com/ferryvm/ferry/internal/testutil/prereq"
)

// slowBlobs serves blob bodies in small, paced chunks so a pull can be
// killed half-way.
func slowBlobs(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || !strings.Contains(r.URL.Path, "/blobs/") {
			next.ServeHTTP(w, r)
			return
		}
		rec := recorded(next, r)
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		b := rec.Body.Bytes()
		for len(b) > 0 {
			n := min(len(b), 32<<10)
			if _, err := w.Write(b[:n]); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			b = b[n:]
			time.Sleep(10 * time.Millisecond)
		}
	})
}

// TestKilledPullChild is the child process of TestKilledPull.
func TestKilledPullChild(t *testing.T) {
	root, ref := os.Getenv("FERRY_KILL_ROOT"), os.Getenv("FERRY_KILL_REF")
	if root == "" {
		return // not started by TestKilledPull: nothing to do
	}
	db, err := bbolt.Open(paths.Root(root).MetaDB(), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(context.Background(), paths.Root(root), db)
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Pull(context.Background(), ref)
	t.Fatalf("the pull should have been killed; it ended with %v", err)
}

// A pull killed with SIGKILL leaves a cache that verifies and lists
// nothing; repeating the pull succeeds and resumes partial downloads.
func TestKilledPull(t *testing.T) {
	prereq.Short(t, "pulls through a slow registry and SIGKILLs the pull")
	img := must[v1.Image](t)(testimage.Random(120, 3, 1<<20))
	host := testimage.Serve(t, slowBlobs)
	ref := testimage.Push(t, host, "killed:1", img)
	root := t.TempDir()

	cmd := exec.Command(os.Args[0], "-test.run=^TestKilledPullChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), "FERRY_KILL_ROOT="+root, "FERRY_KILL_REF="+ref)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	ingest := filepath.Join(paths.Root(root).Content(), "ingest")
	deadline := time.Now().Add(20 * time.Second)
	for {
		var partial int64
		ents, _ := os.ReadDir(ingest)
		for _, e := range ents {
			if fi, err := e.Info(); err == nil {
				partial += fi.Size()
			}
		}
		if partial > 256<<10 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("child made no progress")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()

	s, _ := newStoreAt(t, root)
	if l := must[[]Summary](t)(s.List(context.Background())); len(l) != 0 {
		t.Fatalf("a killed pull listed %+v", l)
	}
	if bad := must[[]v1.Hash](t)(s.Verify(context.Background())); len(bad) != 0 {
		t.Fatalf("corrupt blobs after kill: %v", bad)
	}
	if n := blobCount(t, s); n != 0 {
		t.Errorf("%d orphan blobs of the killed pull left in the cache", n)
	}
	res, err := s.Pull(context.Background(), ref)
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, l := range must[[]v1.Layer](t)(img.Layers()) {
		total += must[int64](t)(l.Size())
	}
	if res.BytesFetched >= total {
		t.Errorf("repeat pull fetched %d of %d layer bytes: nothing resumed", res.BytesFetched, total)
	}
	if bad := must[[]v1.Hash](t)(s.Verify(context.Background())); len(bad) != 0 {
		t.Fatalf("verify: %v", bad)
	}
}
