package mirror

import (
	"context"
	"io"
	"log"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ferryvm/ferry/internal/image"
)

// waitUpstream polls the store until tag's upstream state satisfies ok.
func waitUpstream(t *testing.T, st *image.Store, tag string, ok func(image.UpstreamState) bool) image.UpstreamState {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	var last image.UpstreamState
	for time.Now().Before(deadline) {
		list, err := st.List(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, im := range list {
			if u, found := im.Upstream[tag]; found {
				last = u
				if ok(u) {
					return u
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("upstream state of %s never got there; last %+v", tag, last)
	return last
}

// An image pushed with ?ns= stays local while its upstream is down (its
// state says failed and why), and reaches the upstream once it is back.
func TestWriteBackAcrossOutage(t *testing.T) {
	st, host, m := newMirrorServer(t)
	wb := NewWriteBack(st, Backoff{Min: 50 * time.Millisecond, Max: 200 * time.Millisecond}, nil)
	m.WithWriteBack(wb)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go wb.Run(ctx)

	// Reserve the upstream's address, with nothing listening there yet.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	up := l.Addr().String()
	l.Close()

	img, _ := random.Image(256<<10, 2)
	pushNS(t, host, up, "team/app:v1", img)
	tag := up + "/team/app:v1"
	// Local at once, whatever the upstream does.
	listed(t, st, tag)
	u := waitUpstream(t, st, tag, func(u image.UpstreamState) bool { return u.State == image.UpstreamFailed })
	if !strings.Contains(u.Error, "connection refused") {
		t.Fatalf("failed state should say why: %+v", u)
	}
	if !strings.HasPrefix(u.String(), "failed: ") {
		t.Fatalf("state string %q", u.String())
	}

	// The upstream comes back: the next retry pushes it.
	l, err = net.Listen("tcp", up)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: registry.New(registry.Logger(log.New(io.Discard, "", 0)))}
	go func() { _ = srv.Serve(l) }()
	defer srv.Close()
	waitUpstream(t, st, tag, func(u image.UpstreamState) bool { return u.State == image.UpstreamDone })
	ref, _ := name.ParseReference(tag, name.Insecure)
	got, err := remote.Image(ref)
	if err != nil {
		t.Fatalf("upstream lacks the image after write-back: %v", err)
	}
	if gd, _ := got.Digest(); true {
		if wd, _ := img.Digest(); gd != wd {
			t.Fatalf("upstream has %s, pushed %s", gd, wd)
		}
	}
}

// A write-back queued before a restart is pushed by the next daemon's worker.
func TestWriteBackResumes(t *testing.T) {
	st, host, m := newMirrorServer(t)
	first := NewWriteBack(st, DefaultBackoff, nil) // never run: the daemon died
	m.WithWriteBack(first)
	up := upstreamRegistry(t)
	img, _ := random.Image(1024, 1)
	pushNS(t, host, up, "app:v1", img)
	tag := up + "/app:v1"
	waitUpstream(t, st, tag, func(u image.UpstreamState) bool { return u.State == image.UpstreamPending })

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go NewWriteBack(st, DefaultBackoff, nil).Run(ctx)
	waitUpstream(t, st, tag, func(u image.UpstreamState) bool { return u.State == image.UpstreamDone })
}

// build --push through the mirror: Push returns at once with the image's
// digest and the write-back delivers it upstream.
func TestWriteBackAsPusher(t *testing.T) {
	st, host, _ := newMirrorServer(t) // no write-back on the server: the build's image is just local
	up := upstreamRegistry(t)
	img, _ := random.Image(1024, 1)
	pushNS(t, host, up, "built:v1", img)
	tag := up + "/built:v1"
	if _, err := remote.Image(mustRef(t, tag)); err == nil {
		t.Fatal("upstream has the image before any push")
	}
	wb := NewWriteBack(st, Backoff{Min: 50 * time.Millisecond, Max: 200 * time.Millisecond}, nil)
	d, err := wb.Push(context.Background(), tag, nil, nil)
	if want, _ := img.Digest(); err != nil || d != want {
		t.Fatalf("Push: %s %v, want %s", d, err, want)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go wb.Run(ctx)
	waitUpstream(t, st, tag, func(u image.UpstreamState) bool { return u.State == image.UpstreamDone })
	if _, err := remote.Image(mustRef(t, tag)); err != nil {
		t.Fatalf("upstream lacks the built image: %v", err)
	}
}

func mustRef(t *testing.T, s string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(s, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// A pull through the mirror (?ns=) of an image only the upstream has
// caches it in the store and serves it.
func TestPullThrough(t *testing.T) {
	st, host, _ := newMirrorServer(t)
	up := upstreamRegistry(t)
	img, _ := random.Image(4096, 2)
	if err := remote.Write(mustRef(t, up+"/lib/base:1"), img); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodGet, "http://"+host+"/v2/lib/base/manifests/1?ns="+up, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	want, _ := img.Digest()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Docker-Content-Digest") != want.String() {
		t.Fatalf("pull through: %d %s, want %s", resp.StatusCode, resp.Header.Get("Docker-Content-Digest"), want)
	}
	if got := listed(t, st, up+"/lib/base:1"); got != want {
		t.Fatalf("cached %s, want %s", got, want)
	}
}
