package image

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"go.etcd.io/bbolt"

	"github.com/ferryvm/ferry/internal/errdefs"
	"github.com/ferryvm/ferry/internal/image/content"
)

// Pull fetches ref (resolved as Docker does) into the cache and names it.
// A manifest list or index is resolved to one platform (PullPlatform, else
// the store's default); an absent platform fails with an error listing the
// available ones. Blobs already cached are not fetched; the rest are fetched
// in parallel, verified while streaming, and committed before the config,
// the manifest and finally the metadata record, so a failed or killed pull
// never lists a partial image. On failure the blobs this pull added leave
// the cache again; they and any partial downloads stay in ingest/ so that a
// retry resumes them (after a disk-full failure they are deleted instead).
func (s *Store) Pull(ctx context.Context, ref string, opts ...PullOption) (*PullResult, error) {
	o := pullOptions{}
	for _, f := range opts {
		f(&o)
	}
	want := s.opts.platform
	if o.platform != nil {
		want = *o.platform
	}
	r, err := s.parseForRegistry(ref)
	if err != nil {
		return nil, fmt.Errorf("pull: %w", err)
	}
	canon := Canonical(r)
	p := &puller{s: s, ref: canon, progress: o.progress, added: map[v1.Hash]bool{}, partials: map[v1.Hash]bool{}}

	s.gc.RLock()
	res, err := p.pull(ctx, r, o, want)
	s.gc.RUnlock()
	if err != nil {
		p.undo()
		if errors.Is(err, content.ErrDiskFull) {
			for d := range p.partials { // free the space rather than keep it for a resume
				s.content.RemoveIngest(d)
			}
		}
		return nil, fmt.Errorf("pull %s: %w", canon, err)
	}
	s.emit(EventPull, res.Image.ID, res.Ref)
	return res, nil
}

// puller is the state of one pull.
type puller struct {
	s        *Store
	ref      string
	progress ProgressFunc

	mu       sync.Mutex
	added    map[v1.Hash]bool // blobs this pull committed (removed again on failure)
	partials map[v1.Hash]bool // blobs this pull started ingesting
	fetched  int64
	nFetch   int
	nExist   int
}

func (p *puller) pull(ctx context.Context, r name.Reference, o pullOptions, want v1.Platform) (*PullResult, error) {
	c, err := p.s.newClient(ctx, r.Context(), o.auth, transport.PullScope)
	if err != nil {
		return nil, err
	}
	raw, top, err := c.manifest(ctx, r.Identifier())
	if err != nil {
		return nil, err
	}
	mt, err := Sniff(raw)
	if err != nil {
		return nil, err
	}
	digest := top
	if indexTypes[mt] {
		idx, _, err := ParseIndex(raw)
		if err != nil {
			return nil, err
		}
		desc, err := selectPlatform(p.ref, idx, want)
		if err != nil {
			return nil, err
		}
		if raw, digest, err = c.manifest(ctx, desc.Digest.String()); err != nil {
			return nil, err
		}
	}
	m, mt, err := ParseManifest(raw)
	if err != nil {
		return nil, err
	}
	if err := p.fetchBlobs(ctx, c, m); err != nil {
		return nil, err
	}
	if err := p.commit(ctx, digest, raw); err != nil {
		return nil, err
	}
	cfgRaw, err := p.s.content.ReadAll(m.Config.Digest)
	if err != nil {
		return nil, err
	}
	rec, err := newRecord(m, mt, raw, cfgRaw)
	if err != nil {
		return nil, err
	}
	rec.Origin = canonicalRepo(r.Context())
	names := []string{canonicalRepo(r.Context()) + "@" + top.String()}
	if _, isTag := r.(name.Tag); isTag {
		names = append(names, p.ref)
	}
	var sum Summary
	err = p.s.db.Update(func(tx *bbolt.Tx) error {
		if old, err := getRecord(tx, digest); err == nil && !old.Pulled.IsZero() {
			rec.Pulled = old.Pulled // a re-pull keeps the first pull time, as Docker keeps Created
		}
		if err := putRecord(tx, digest, rec); err != nil {
			return err
		}
		for _, n := range names {
			if err := tx.Bucket(bucketNames).Put([]byte(n), []byte(digest.String())); err != nil {
				return err
			}
		}
		sum = summaryOf(tx, digest, rec)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("record image: %w", err)
	}
	p.added = nil // nothing to undo now
	p.s.syncIndex()
	return &PullResult{Image: sum, Ref: p.ref, BytesFetched: p.fetched, BlobsFetched: p.nFetch, BlobsExisting: p.nExist}, nil
}

// commit stores a manifest blob.
func (p *puller) commit(ctx context.Context, d v1.Hash, raw []byte) error {
	err := p.s.content.Ingest(ctx, d, int64(len(raw)), bytesReader(raw))
	if errors.Is(err, errdefs.ErrAlreadyExists) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("store manifest %s: %w", d, err)
	}
	p.added[d] = true
	return nil
}

// undo takes the blobs a failed pull committed out of the cache again
// (unless something else references them by now), keeping them in ingest/
// so that repeating the pull does not fetch them again.
func (p *puller) undo() {
	if len(p.added) == 0 {
		return
	}
	p.s.gc.Lock()
	defer p.s.gc.Unlock()
	if _, err := p.s.gcLocked(context.Background(), p.added, true); err != nil {
		p.s.opts.logger.Warn("pull: removing blobs of a failed pull", "ref", p.ref, "err", err)
	}
}

// newRecord builds the metadata record of a manifest and its config.
func newRecord(m *v1.Manifest, mt types.MediaType, raw, cfgRaw []byte) (*record, error) {
	cfg, err := v1.ParseConfigFile(bytesReader(cfgRaw))
	if err != nil {
		return nil, fmt.Errorf("config %s: %w: %w", m.Config.Digest, err, errdefs.ErrInvalidArgument)
	}
	if len(cfg.RootFS.DiffIDs) != len(m.Layers) {
		return nil, fmt.Errorf("config %s lists %d diff IDs for %d layers (broken image): %w", m.Config.Digest, len(cfg.RootFS.DiffIDs), len(m.Layers), errdefs.ErrInvalidArgument)
	}
	size := int64(len(raw)) + m.Config.Size
	for _, l := range m.Layers {
		size += l.Size
	}
	return &record{
		MediaType: mt,
		Platform:  v1.Platform{OS: cfg.OS, Architecture: cfg.Architecture, Variant: cfg.Variant, OSVersion: cfg.OSVersion},
		Config:    m.Config.Digest,
		Size:      size,
		Created:   cfg.Created.Time,
		Pulled:    time.Now().UTC(),
	}, nil
}
