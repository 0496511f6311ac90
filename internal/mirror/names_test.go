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

	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ferryvm/ferry/internal/image"
)

// upstreamRegistry serves a fresh go-containerregistry registry and
// returns its host.
func upstreamRegistry(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: registry.New(registry.Logger(log.New(io.Discard, "", 0)))}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { srv.Close() })
	return l.Addr().String()
}

// With --mirror-upstream team=UP/org, a plain push (no ?ns=) of team/app
// is stored as UP/org/app and written back there; a pull of team/base
// that the store lacks is pulled through from UP/org/base.
func TestUpstreamMapping(t *testing.T) {
	st, host, m := newMirrorServer(t)
	up := upstreamRegistry(t)
	u, err := ParseUpstream("team=" + up + "/org")
	if err != nil {
		t.Fatal(err)
	}
	host2, err := ParseUpstream("registry.example.com") // HOST alone: HOST=HOST
	if err != nil || host2.Prefix != "registry.example.com" || host2.Upstream != "registry.example.com" {
		t.Fatalf("ParseUpstream(registry.example.com) = %+v, %v", host2, err)
	}
	wb := NewWriteBack(st, Backoff{Min: 50 * time.Millisecond, Max: 200 * time.Millisecond}, nil)
	m.WithUpstreams(host2, u).WithWriteBack(wb)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go wb.Run(ctx)

	img, _ := random.Image(4096, 2)
	if err := remote.Write(mustRef(t, host+"/team/app:v1"), img); err != nil {
		t.Fatal(err)
	}
	want, _ := img.Digest()
	tag := up + "/org/app:v1"
	if got := listed(t, st, tag); got != want {
		t.Fatalf("stored %s, pushed %s", got, want)
	}
	waitUpstream(t, st, tag, func(u image.UpstreamState) bool { return u.State == image.UpstreamDone })
	if got, err := remote.Image(mustRef(t, tag)); err != nil {
		t.Fatalf("upstream lacks the mapped push: %v", err)
	} else if d, _ := got.Digest(); d != want {
		t.Fatalf("upstream has %s, pushed %s", d, want)
	}
	// The mirror serves it under the name it was pushed as.
	if back, err := remote.Image(mustRef(t, host+"/team/app:v1")); err != nil {
		t.Fatal(err)
	} else if d, _ := back.Digest(); d != want {
		t.Fatalf("mirror serves %s", d)
	}

	base, _ := random.Image(2048, 1)
	if err := remote.Write(mustRef(t, up+"/org/base:1"), base); err != nil {
		t.Fatal(err)
	}
	got, err := remote.Image(mustRef(t, host+"/team/base:1"))
	if err != nil {
		t.Fatalf("pull-through of a mapped name: %v", err)
	}
	if d, _ := got.Digest(); true {
		if bd, _ := base.Digest(); d != bd {
			t.Fatalf("pulled through %s, upstream has %s", d, bd)
		}
	}
	listed(t, st, up+"/org/base:1")
}

func TestParseUpstreamBadInput(t *testing.T) {
	for in, want := range map[string]string{
		"Team=registry.example.com":  "not a repository path",
		"team=":                      "not a registry repository",
		"team=org/app":               "does not start with a registry host",
		"=registry.example.com/team": "not a repository path",
	} {
		if _, err := ParseUpstream(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseUpstream(%q) = %v, want %q", in, err, want)
		}
	}
}
