package build

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"go.etcd.io/bbolt"

	"github.com/ferryvm/ferry/internal/build/cache"
	"github.com/ferryvm/ferry/internal/guest"
	"github.com/ferryvm/ferry/internal/image"
	"github.com/ferryvm/ferry/internal/paths"
	"github.com/ferryvm/ferry/internal/testimage"
	"github.com/ferryvm/ferry/internal/testutil/prereq"
)

// fakeRunner stands in for builder VMs in unit tests: it records what the
// builder asks for, and "runs" a step with act.
type fakeRunner struct {
	mu     sync.Mutex
	starts []SessionSpec
	loads  []string // kind:id
	runs   []guest.BuildStep
	closed int
	act    func(s guest.BuildStep) (code int, diff []guest.TreeEntry, stderr string)
	diffs  map[string][]guest.TreeEntry
}

func (f *fakeRunner) Start(ctx context.Context, spec SessionSpec) (Session, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.starts = append(f.starts, spec)
	if f.diffs == nil {
		f.diffs = map[string][]guest.TreeEntry{}
	}
	return &fakeSession{f: f}, nil
}

func (f *fakeRunner) Reap(ctx context.Context) error { return nil }

type fakeSession struct{ f *fakeRunner }

func (s *fakeSession) Load(ctx context.Context, kind, id string, r io.Reader) error {
	if _, err := io.Copy(io.Discard, r); err != nil {
		return err
	}
	s.f.mu.Lock()
	s.f.loads = append(s.f.loads, kind+":"+id)
	s.f.mu.Unlock()
	return nil
}

func (s *fakeSession) Run(ctx context.Context, st guest.BuildStep, stdout, stderr io.Writer) (int, error) {
	s.f.mu.Lock()
	s.f.runs = append(s.f.runs, st)
	s.f.mu.Unlock()
	code, diff, e := 0, []guest.TreeEntry(nil), ""
	if s.f.act != nil {
		code, diff, e = s.f.act(st)
	}
	fmt.Fprintf(stdout, "ran %s\n", st.Argv[len(st.Argv)-1])
	io.WriteString(stderr, e)
	s.f.mu.Lock()
	s.f.diffs[st.Upper] = diff
	s.f.mu.Unlock()
	return code, nil
}

func (s *fakeSession) Diff(ctx context.Context, id string, w io.Writer) error {
	tw := guest.NewTreeWriter(w)
	for _, e := range s.f.diffs[id] {
		e := e
		data := e.Link
		if e.Type == guest.TreeReg {
			e.Size, e.Link = int64(len(data)), ""
		}
		if e.Mode == 0 {
			e.Mode = 0o644
		}
		tw.WriteEntry(&e)
		io.WriteString(tw, data)
	}
	return tw.Close()
}

func (s *fakeSession) Save(ctx context.Context, id string, w io.Writer) error {
	return guest.NewTreeWriter(w).Close()
}

func (s *fakeSession) Close(ctx context.Context) error {
	s.f.mu.Lock()
	s.f.closed++
	s.f.mu.Unlock()
	return nil
}

// env is a builder over a real image store with busybox:local in it.
type env struct {
	t      *testing.T
	store  *image.Store
	b      *Builder
	runner *fakeRunner
	ctxDir string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	prereq.Root(t, "extracts build contexts with their owners")
	root := paths.Root(t.TempDir())
	db, err := bbolt.Open(filepath.Join(string(root), "meta.db"), 0o600, &bbolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	ctx := context.Background()
	store, err := image.Open(ctx, root, db, image.WithoutFsync())
	if err != nil {
		t.Fatal(err)
	}
	bb, err := testimage.Busybox()
	if errors.Is(err, testimage.ErrNoBusybox) {
		prereq.Missing(t, testimage.BusyboxPath, "apt-get install busybox-static (scripts/deps.sh)")
	}
	if err != nil {
		t.Fatal(err)
	}
	ref := testimage.Push(t, testimage.Registry(t), "busybox", bb)
	if _, err := store.Pull(ctx, ref); err != nil {
		t.Fatal(err)
	}
	if err := store.Tag(ctx, ref, "busybox:local"); err != nil {
		t.Fatal(err)
	}
	ims, puller, pusher := FromStore(store)
	cs, err := cache.Open(db, ims, store.Content())
	if err != nil {
		t.Fatal(err)
	}
	r := &fakeRunner{}
	b, err := New(Config{Images: ims, Puller: puller, Pusher: pusher, Runner: r, Cache: cs, Dir: filepath.Join(string(root), "build")})
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, store: store, b: b, runner: r, ctxDir: t.TempDir()}
}

// build runs a build of dockerfile over the env's context dir and returns
// the result and the events.
func (e *env) build(dockerfile string, req Request) (*Result, []Event, error) {
	e.t.Helper()
	req.Dockerfile, req.Context = []byte(dockerfile), e.ctxDir
	var evs []Event
	var mu sync.Mutex
	res, err := e.b.Build(context.Background(), req, func(ev Event) { mu.Lock(); evs = append(evs, ev); mu.Unlock() })
	return res, evs, err
}

func states(evs []Event) string {
	var out []string
	for _, e := range evs {
		if e.Step != nil && e.Step.State != StepRunning {
			out = append(out, e.Step.State)
		}
	}
	return strings.Join(out, " ")
}

func logs(evs []Event) string {
	var b strings.Builder
	for _, e := range evs {
		if e.Log != nil {
			b.WriteString(e.Log.Data)
		}
	}
	return b.String()
}

func (e *env) config(ref string) *v1.ConfigFile {
	e.t.Helper()
	img, _, err := e.store.Image(context.Background(), ref)
	if err != nil {
		e.t.Fatal(err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		e.t.Fatal(err)
	}
	return cfg
}

func jsonString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

var _ = bytes.NewReader

func nowMinus() time.Time { return now().Add(-time.Hour) }
