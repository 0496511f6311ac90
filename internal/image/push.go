package image

import (
	"context"
	"fmt"
	"sync"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"go.etcd.io/bbolt"
)

// Push uploads the cached image localRef to remoteRef (default: localRef
// itself) with go-containerregistry's remote.Write: blobs the registry
// already has are skipped, blobs from another repository of the same
// registry are mounted, and progress is reported per blob. It returns the
// pushed manifest digest (the same as the cached image's).
func (s *Store) Push(ctx context.Context, localRef, remoteRef string, opts ...PushOption) (v1.Hash, error) {
	o := pushOptions{}
	for _, f := range opts {
		f(&o)
	}
	if remoteRef == "" {
		remoteRef = localRef
	}
	r, err := s.parseForRegistry(remoteRef)
	if err != nil {
		return v1.Hash{}, fmt.Errorf("push: %w", err)
	}
	canon := Canonical(r)
	s.gc.RLock()
	defer s.gc.RUnlock()

	var d v1.Hash
	var rec *record
	err = s.db.View(func(tx *bbolt.Tx) error {
		var err error
		if d, _, err = resolve(tx, localRef); err != nil {
			return err
		}
		rec, err = getRecord(tx, d)
		return err
	})
	if err != nil {
		return v1.Hash{}, fmt.Errorf("push %s: %w", localRef, err)
	}
	raw, err := s.content.ReadAll(d)
	if err != nil {
		return v1.Hash{}, fmt.Errorf("push %s: %w", localRef, err)
	}
	m, mt, err := ParseManifest(raw)
	if err != nil {
		return v1.Hash{}, fmt.Errorf("push %s: %w", localRef, err)
	}
	var mu sync.Mutex
	read := map[v1.Hash]bool{}
	track := func(p Progress) {
		mu.Lock()
		read[p.Digest] = true
		mu.Unlock()
		if o.progress != nil {
			o.progress(p)
		}
	}
	core := &storedImage{cs: s.content, digest: d, raw: raw, mt: mt, m: m, progress: track, ref: canon}
	img, err := partial.CompressedToImage(core)
	if err != nil {
		return v1.Hash{}, fmt.Errorf("push %s: %w", localRef, err)
	}
	if rec.Origin != "" {
		if origin, err := name.NewRepository(rec.Origin); err == nil &&
			origin.RegistryStr() == r.Context().RegistryStr() && origin.RepositoryStr() != r.Context().RepositoryStr() {
			img = &mountable{Image: img, from: origin}
		}
	}
	a, err := s.authFor(ctx, r.Context(), o.auth)
	if err != nil {
		return v1.Hash{}, fmt.Errorf("push %s: %w", canon, err)
	}
	for _, l := range m.Layers {
		s.emitPush(o.progress, Progress{Ref: canon, Digest: l.Digest, Kind: "layer", Total: l.Size, State: StateWaiting})
	}
	err = remote.Write(r, img, remote.WithContext(ctx), remote.WithAuth(a),
		remote.WithTransport(s.opts.transport), remote.WithJobs(s.opts.jobs))
	if err != nil {
		return v1.Hash{}, fmt.Errorf("push %s: %w", canon, registryError(canon, "", err))
	}
	for _, l := range m.Layers {
		st := StateExists
		if read[l.Digest] {
			st = StateDone
		}
		s.emitPush(o.progress, Progress{Ref: canon, Digest: l.Digest, Kind: "layer", Total: l.Size, Done: l.Size, State: st})
	}
	s.emit(EventPush, d, canon)
	return d, nil
}

func (s *Store) emitPush(f ProgressFunc, p Progress) {
	if f != nil {
		f(p)
	}
}

// mountable makes remote.Write mount layers from the repository the image
// was pulled from (same registry) instead of uploading them.
type mountable struct {
	v1.Image
	from name.Repository
}

func (m *mountable) Layers() ([]v1.Layer, error) {
	ls, err := m.Image.Layers()
	if err != nil {
		return nil, err
	}
	out := make([]v1.Layer, len(ls))
	for i, l := range ls {
		d, err := l.Digest()
		if err != nil {
			return nil, err
		}
		out[i] = &remote.MountableLayer{Layer: l, Reference: m.from.Digest(d.String())}
	}
	return out, nil
}
