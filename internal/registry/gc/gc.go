// Package gc is the registry's garbage collector. It marks every blob that
// a manifest of a live repository references, then, repository by
// repository, removes links to blobs the repository's owner (a tenant)
// neither references from any of its manifests nor touched within a grace
// window, and finally sweeps the blob data nothing marks or links any more.
//
// Blobs are shared on storage across owners, but gc's decisions about an
// owner's links depend only on that owner's manifests and activity: another
// owner referencing or touching the same bytes neither keeps an orphan link
// alive nor tells the owner anything (a HEAD after gc answers the same).
//
// It is safe while pushes are in flight: a blob a client just uploaded,
// mounted or found by HEAD (and so will reference in the manifest it is
// about to push) was recorded as its owner's activity by the server, and a
// link or blob file written within the window is kept whatever the records
// say.
//
// It works on distribution's storage layout through distribution's storage
// API and driver, so it covers filesystem and S3 alike.
package gc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path"
	"strings"
	"time"

	"github.com/distribution/distribution/v3"
	"github.com/distribution/distribution/v3/registry/storage"
	"github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
)

// Activity is what gc needs from the metadata store, per owner.
type Activity interface {
	// BlobTouchedSince reports whether owner touched digest at or after since.
	BlobTouchedSince(ctx context.Context, owner, digest string, since time.Time) (bool, error)
	// DigestAlias resolves, for owner, a digest of another algorithm to the
	// canonical one it is stored under.
	DigestAlias(ctx context.Context, owner, alias string) (string, error)
}

// Options are gc's settings.
type Options struct {
	Grace  time.Duration // keep links and blobs touched or written within this window
	DryRun bool          // report, delete nothing
	// LiveRepo reports whether a repository still belongs to someone;
	// repositories it rejects mark nothing and are removed. Nil: all live.
	LiveRepo func(name string) bool
	// Owner names the tenant a live repository belongs to. Nil: each
	// repository is its own owner.
	Owner func(repo string) string
	// Holdings, when set, receives for each live repository what it holds
	// once gc is done (canonical digest → size): its manifests, the blobs
	// they reference, and the linked blobs kept.
	Holdings func(ctx context.Context, repo string, blobs map[digest.Digest]int64) error
	Now      func() time.Time
	Log      *slog.Logger
}

// Report is what a run found and freed.
type Report struct {
	Repositories        int      `json:"repositories"`
	Manifests           int      `json:"manifests"`
	BlobsMarked         int      `json:"blobs_marked"`
	BlobsDeleted        int      `json:"blobs_deleted"`
	BytesFreed          int64    `json:"bytes_freed"`
	BlobsKeptRecent     int      `json:"blobs_kept_recent"`
	LinksRemoved        int      `json:"links_removed"`
	RepositoriesRemoved []string `json:"repositories_removed,omitempty"`
	EmptyRepositories   []string `json:"empty_repositories,omitempty"` // live, but without manifests

	Deleted []string `json:"deleted,omitempty"`
	DryRun  bool     `json:"dry_run"`
}

// blobDataPath is where distribution keeps a blob's bytes (see its
// registry/storage/paths.go; a repository's links to blobs are files
// _layers/<algorithm>/<hex>/link under the repository, naming the blob).
func blobDataPath(d digest.Digest) string {
	return path.Join("/docker/registry/v2/blobs", d.Algorithm().String(), d.Encoded()[:2], d.Encoded(), "data")
}

// run is one collection's state.
type run struct {
	ctx    context.Context
	drv    driver.StorageDriver
	reg    distribution.Namespace
	act    Activity
	opts   Options
	since  time.Time
	rep    Report
	marked map[digest.Digest]bool
	// refs holds, per owner, what its manifests reference; held, per
	// repository, its manifests and what they reference.
	refs   map[string]map[digest.Digest]bool
	held   map[string][]digest.Digest
	sizes  map[digest.Digest]int64
	recent map[digest.Digest]bool // kept only for being recent or touched
}

// Run collects garbage on the storage behind drv.
func Run(ctx context.Context, drv driver.StorageDriver, act Activity, opts Options) (Report, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if opts.Owner == nil {
		opts.Owner = func(repo string) string { return repo }
	}
	g := &run{ctx: ctx, drv: drv, act: act, opts: opts, rep: Report{DryRun: opts.DryRun},
		marked: map[digest.Digest]bool{}, refs: map[string]map[digest.Digest]bool{},
		held: map[string][]digest.Digest{}, sizes: map[digest.Digest]int64{}, recent: map[digest.Digest]bool{}}
	g.since = opts.Now().Add(-opts.Grace)
	reg, err := storage.NewRegistry(ctx, drv)
	if err != nil {
		return g.rep, fmt.Errorf("gc: %w", err)
	}
	g.reg = reg
	var live, dead []string
	err = repositories(ctx, drv, func(name string) {
		if opts.LiveRepo != nil && !opts.LiveRepo(name) {
			dead = append(dead, name)
			return
		}
		live = append(live, name)
	})
	if err != nil {
		return g.rep, fmt.Errorf("gc: %w", err)
	}
	for _, name := range live {
		g.rep.Repositories++
		before := g.rep.Manifests
		if err := g.markRepo(name); err != nil {
			return g.rep, fmt.Errorf("gc mark: %w", err)
		}
		if g.rep.Manifests == before {
			g.rep.EmptyRepositories = append(g.rep.EmptyRepositories, name)
		}
	}
	for _, name := range live {
		if err := g.links(name); err != nil {
			return g.rep, fmt.Errorf("gc links: %w", err)
		}
	}
	g.rep.BlobsMarked = len(g.marked)
	for d := range g.recent {
		if !g.referencedAnywhere(d) {
			g.rep.BlobsKeptRecent++
		}
	}
	if err := g.sweep(); err != nil {
		return g.rep, fmt.Errorf("gc sweep: %w", err)
	}
	if opts.Holdings != nil {
		deleted := map[digest.Digest]bool{}
		for _, d := range g.rep.Deleted {
			deleted[digest.Digest(d)] = true
		}
		for _, name := range live {
			blobs := map[digest.Digest]int64{}
			for _, d := range g.held[name] {
				if size, ok := g.size(d); ok && !deleted[d] {
					blobs[d] = size
				}
			}
			if err := opts.Holdings(ctx, name, blobs); err != nil {
				return g.rep, err
			}
		}
	}
	vacuum := storage.NewVacuum(ctx, drv)
	for _, name := range dead {
		g.rep.RepositoriesRemoved = append(g.rep.RepositoriesRemoved, name)
		if !opts.DryRun {
			if err := vacuum.RemoveRepository(name); err != nil {
				return g.rep, fmt.Errorf("gc: remove repository %s: %w", name, err)
			}
		}
	}
	return g.rep, nil
}

// repositories lists every repository on storage: those with manifests,
// and those holding only blob links (distribution's own enumerator skips
// these, and gc must judge their links too).
func repositories(ctx context.Context, drv driver.StorageDriver, fn func(name string)) error {
	const root = "/docker/registry/v2/repositories"
	seen := map[string]bool{}
	err := drv.Walk(ctx, root, func(fi driver.FileInfo) error {
		rel := strings.TrimPrefix(fi.Path(), root+"/")
		dir, file := path.Split(rel)
		if !strings.HasPrefix(file, "_") {
			return nil
		}
		if name := strings.TrimSuffix(dir, "/"); (file == "_manifests" || file == "_layers") && name != "" && !seen[name] {
			seen[name] = true
			fn(name)
		}
		return driver.ErrSkipDir
	})
	var notFound driver.PathNotFoundError
	if err != nil && !errors.As(err, &notFound) {
		return err
	}
	return nil
}

// canonical resolves d for owner (sha512 to the sha256 it is stored under).
func (g *run) canonical(owner string, d digest.Digest) digest.Digest {
	if d.Algorithm() == digest.Canonical {
		return d
	}
	if c, err := g.act.DigestAlias(g.ctx, owner, d.String()); err == nil {
		return digest.Digest(c)
	}
	return d
}

// referencedAnywhere reports whether some manifest references d.
func (g *run) referencedAnywhere(d digest.Digest) bool {
	for _, refs := range g.refs {
		if refs[d] {
			return true
		}
	}
	return false
}

// size is a blob's size on storage, false when it has no data.
func (g *run) size(d digest.Digest) (int64, bool) {
	if s, ok := g.sizes[d]; ok {
		return s, s >= 0
	}
	fi, err := g.drv.Stat(g.ctx, blobDataPath(d))
	if err != nil {
		g.sizes[d] = -1
		return 0, false
	}
	g.sizes[d] = fi.Size()
	return fi.Size(), true
}

// links removes a repository's links to blobs its owner neither references
// nor touched within the window; the links kept mark their blobs. A blob
// uploaded under another algorithm has a link under that digest too
// (pointing at the canonical one): all links to a blob go together.
func (g *run) links(name string) error {
	root := path.Join("/docker/registry/v2/repositories", name, "_layers")
	type target struct {
		dirs   []string
		recent bool
	}
	targets := map[digest.Digest]*target{}
	var order []digest.Digest
	err := g.drv.Walk(g.ctx, root, func(fi driver.FileInfo) error {
		if fi.IsDir() || path.Base(fi.Path()) != "link" {
			return nil
		}
		raw, err := g.drv.GetContent(g.ctx, fi.Path())
		if err != nil {
			return nil // vanished meanwhile
		}
		d, err := digest.Parse(strings.TrimSpace(string(raw)))
		if err != nil {
			return nil
		}
		t := targets[d]
		if t == nil {
			t = &target{}
			targets[d] = t
			order = append(order, d)
		}
		t.dirs = append(t.dirs, path.Dir(fi.Path()))
		if fi.ModTime().After(g.since) {
			t.recent = true
		}
		return nil
	})
	var notFound driver.PathNotFoundError
	if err != nil && !errors.As(err, &notFound) {
		return fmt.Errorf("repository %s: %w", name, err)
	}
	owner := g.opts.Owner(name)
	for _, d := range order {
		t := targets[d]
		if _, ok := g.size(d); !ok {
			continue // dangling: the blob is gone already
		}
		referenced := g.refs[owner][d]
		keep := referenced || t.recent
		if !keep {
			if keep, err = g.act.BlobTouchedSince(g.ctx, owner, d.String(), g.since); err != nil {
				return err
			}
		}
		if keep {
			if !referenced {
				g.recent[d] = true
			}
			g.marked[d] = true
			g.held[name] = append(g.held[name], d)
			continue
		}
		g.rep.LinksRemoved++
		if g.opts.DryRun {
			continue
		}
		g.opts.Log.Debug("gc: unlink blob", "repository", name, "digest", d)
		for _, dir := range t.dirs {
			if err := g.drv.Delete(g.ctx, dir); err != nil && !errors.As(err, &notFound) {
				return fmt.Errorf("repository %s: unlink %s: %w", name, d, err)
			}
		}
	}
	return nil
}

// sweep deletes the blob data nothing marks, unless written within the
// window (an upload that has not linked it yet).
func (g *run) sweep() error {
	vacuum := storage.NewVacuum(g.ctx, g.drv)
	err := g.reg.Blobs().Enumerate(g.ctx, func(d digest.Digest) error {
		if g.marked[d] {
			return nil
		}
		fi, err := g.drv.Stat(g.ctx, blobDataPath(d))
		if err != nil {
			return nil // vanished meanwhile, or not a blob
		}
		if fi.ModTime().After(g.since) {
			g.rep.BlobsKeptRecent++
			return nil
		}
		g.rep.BlobsDeleted++
		g.rep.BytesFreed += fi.Size()
		g.rep.Deleted = append(g.rep.Deleted, d.String())
		if g.opts.DryRun {
			return nil
		}
		g.opts.Log.Debug("gc: delete blob", "digest", d, "size", fi.Size())
		return vacuum.RemoveBlob(d.String())
	})
	var notFound driver.PathNotFoundError
	if err != nil && !errors.As(err, &notFound) {
		return err
	}
	return nil
}

// markRepo marks every manifest of a repository and what each references,
// for its owner. Manifests are read raw and parsed generically, so types
// distribution cannot unmarshal still protect their blobs.
func (g *run) markRepo(name string) error {
	named, err := reference.WithName(name)
	if err != nil {
		return nil
	}
	repo, err := g.reg.Repository(g.ctx, named)
	if err != nil {
		return fmt.Errorf("repository %s: %w", name, err)
	}
	ms, err := repo.Manifests(g.ctx)
	if err != nil {
		return fmt.Errorf("repository %s: %w", name, err)
	}
	me, ok := ms.(distribution.ManifestEnumerator)
	if !ok {
		return errors.New("gc: storage cannot enumerate manifests")
	}
	owner := g.opts.Owner(name)
	refs := g.refs[owner]
	if refs == nil {
		refs = map[digest.Digest]bool{}
		g.refs[owner] = refs
	}
	mark := func(d digest.Digest) {
		if d.Validate() != nil {
			return
		}
		d = g.canonical(owner, d)
		g.marked[d] = true
		refs[d] = true
		g.held[name] = append(g.held[name], d)
	}
	err = me.Enumerate(g.ctx, func(d digest.Digest) error {
		g.rep.Manifests++
		mark(d)
		raw, err := g.drv.GetContent(g.ctx, blobDataPath(d))
		if err != nil {
			return nil // a revision whose blob is gone: nothing to keep
		}
		for _, ref := range references(raw) {
			mark(ref)
		}
		return nil
	})
	var notFound driver.PathNotFoundError
	if err != nil && !errors.As(err, &notFound) {
		return fmt.Errorf("repository %s: %w", name, err)
	}
	return nil
}

// references lists the digests a manifest of any known shape points at
// (config, layers, index children, artifact blobs, schema1 layers). The
// subject is not among them: a referrer does not keep its subject alive.
func references(raw []byte) []digest.Digest {
	type desc struct {
		Digest digest.Digest `json:"digest"`
	}
	var m struct {
		Config    *desc  `json:"config"`
		Layers    []desc `json:"layers"`
		Manifests []desc `json:"manifests"`
		Blobs     []desc `json:"blobs"`
		FSLayers  []struct {
			BlobSum digest.Digest `json:"blobSum"`
		} `json:"fsLayers"`
	}
	if json.Unmarshal(raw, &m) != nil {
		return nil
	}
	var out []digest.Digest
	if m.Config != nil {
		out = append(out, m.Config.Digest)
	}
	for _, l := range append(append(m.Layers, m.Manifests...), m.Blobs...) {
		out = append(out, l.Digest)
	}
	for _, l := range m.FSLayers {
		out = append(out, l.BlobSum)
	}
	return out
}
