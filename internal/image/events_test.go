package image

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ferryvm/ferry/internal/testimage"
)

// TestEvents: pull, tag, untag, delete, save, load, push and prune each
// publish what they did to subscribers, in order, and Recent replays them.
func TestEvents(t *testing.T) {
	ctx := context.Background()
	host := testimage.Registry(t)
	a := must[v1.Image](t)(testimage.Random(20, 1, 2048))
	refA := testimage.Push(t, host, "events/a:1", a)
	s, _ := newStore(t, WithInsecureRegistries(host))
	start := time.Now()
	ch, cancel := s.Subscribe()
	defer cancel()

	pr := must[*PullResult](t)(s.Pull(ctx, refA))
	id := pr.Image.ID
	if err := s.Tag(ctx, refA, "mine:2"); err != nil {
		t.Fatal(err)
	}
	var tarball bytes.Buffer
	if err := s.Save(ctx, &tarball, []string{"mine:2"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Push(ctx, "mine:2", host+"/events/pushed:1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Remove(ctx, "mine:2", false); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Remove(ctx, refA, false); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load(ctx, &tarball); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Prune(ctx, true); err != nil {
		t.Fatal(err)
	}
	canonA := must[string](t)(CanonicalString(refA))
	want := []string{
		"pull " + canonA,
		"tag docker.io/library/mine:2",
		"save ",
		"push " + host + "/events/pushed:1",
		"untag docker.io/library/mine:2",
		"untag " + canonA,
		"delete ",
		"load ",
		"untag docker.io/library/mine:2",
		"delete ",
	}
	var got []string
	for range want {
		select {
		case e := <-ch:
			if e.ID != id {
				t.Errorf("%s %s: image %s, want %s", e.Action, e.Ref, e.ID, id)
			}
			got = append(got, e.Action+" "+e.Ref)
		case <-time.After(10 * time.Second):
			t.Fatalf("got %d events, want %d:\n%s", len(got), len(want), strings.Join(got, "\n"))
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if n := len(s.Recent(start)); n != len(want) {
		t.Fatalf("Recent: %d events, want %d", n, len(want))
	}
}
