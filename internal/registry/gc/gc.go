// Package gc is the registry's garbage collector: mark every blob that a
// manifest of a live repository references, then sweep the unmarked ones,
// except those touched within a grace window. It is safe while pushes are in
// flight: a blob a client just uploaded, mounted or found by HEAD (and so
// will reference in the manifest it is about to push) was recorded as blob
// activity by the server, and a blob file written within the window is kept
// whatever the records say.
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
	"time"

	"github.com/distribution/distribution/v3"
	"github.com/distribution/distribution/v3/registry/storage"
	"github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
)

// Activity is what gc needs from the metadata store.
type Activity interface {
	BlobTouchedSince(ctx context.Context, digest string, since time.Time) (bool, error)
	DigestAlias(ctx context.Context, alias string) (string, error)
}

// Options are gc's settings.
type Options struct {
	Grace  time.Duration // keep blobs touched or written within this window
	DryRun bool          // report, delete nothing
	// LiveRepo reports whether a repository still belongs to someone;
	// repositories it rejects mark nothing and are removed. Nil: all live.
	LiveRepo func(name string) bool
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
	RepositoriesRemoved []string `json:"repositories_removed,omitempty"`
	EmptyRepositories   []string `json:"empty_repositories,omitempty"` // live, but without manifests

	Deleted []string `json:"deleted,omitempty"`
	DryRun  bool     `json:"dry_run"`
}

// blobDataPath is where distribution keeps a blob's bytes (see its
// registry/storage/paths.go).
func blobDataPath(d digest.Digest) string {
	return path.Join("/docker/registry/v2/blobs", d.Algorithm().String(), d.Encoded()[:2], d.Encoded(), "data")
}

// Run collects garbage on the storage behind drv.
func Run(ctx context.Context, drv driver.StorageDriver, act Activity, opts Options) (Report, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	rep := Report{DryRun: opts.DryRun}
	start := opts.Now()
	reg, err := storage.NewRegistry(ctx, drv)
	if err != nil {
		return rep, fmt.Errorf("gc: %w", err)
	}
	marked := map[digest.Digest]bool{}
	mark := func(d digest.Digest) {
		if d.Validate() != nil {
			return
		}
		marked[d] = true
		if d.Algorithm() != digest.Canonical {
			if c, err := act.DigestAlias(ctx, d.String()); err == nil {
				marked[digest.Digest(c)] = true
			}
		}
	}
	var dead []string
	enum, ok := reg.(distribution.RepositoryEnumerator)
	if !ok {
		return rep, errors.New("gc: storage cannot enumerate repositories")
	}
	err = enum.Enumerate(ctx, func(name string) error {
		if opts.LiveRepo != nil && !opts.LiveRepo(name) {
			dead = append(dead, name)
			return nil
		}
		rep.Repositories++
		before := rep.Manifests
		err := markRepo(ctx, reg, drv, name, mark, &rep)
		if err == nil && rep.Manifests == before {
			rep.EmptyRepositories = append(rep.EmptyRepositories, name)
		}
		return err
	})
	var notFound driver.PathNotFoundError
	if err != nil && !errors.As(err, &notFound) {
		return rep, fmt.Errorf("gc mark: %w", err)
	}
	rep.BlobsMarked = len(marked)

	since := start.Add(-opts.Grace)
	vacuum := storage.NewVacuum(ctx, drv)
	err = reg.Blobs().Enumerate(ctx, func(d digest.Digest) error {
		if marked[d] {
			return nil
		}
		fi, err := drv.Stat(ctx, blobDataPath(d))
		if err != nil {
			return nil // vanished meanwhile, or not a blob
		}
		if fi.ModTime().After(since) {
			rep.BlobsKeptRecent++
			return nil
		}
		// Checked last and per blob, so a touch during the mark phase counts.
		recent, err := act.BlobTouchedSince(ctx, d.String(), since)
		if err != nil {
			return err
		}
		if recent {
			rep.BlobsKeptRecent++
			return nil
		}
		rep.BlobsDeleted++
		rep.BytesFreed += fi.Size()
		rep.Deleted = append(rep.Deleted, d.String())
		if opts.DryRun {
			return nil
		}
		opts.Log.Debug("gc: delete blob", "digest", d, "size", fi.Size())
		return vacuum.RemoveBlob(d.String())
	})
	if err != nil && !errors.As(err, &notFound) {
		return rep, fmt.Errorf("gc sweep: %w", err)
	}
	for _, name := range dead {
		rep.RepositoriesRemoved = append(rep.RepositoriesRemoved, name)
		if !opts.DryRun {
			if err := vacuum.RemoveRepository(name); err != nil {
				return rep, fmt.Errorf("gc: remove repository %s: %w", name, err)
			}
		}
	}
	return rep, nil
}

// markRepo marks every manifest of a repository and what each references.
// Manifests are read raw and parsed generically, so types distribution
// cannot unmarshal still protect their blobs.
func markRepo(ctx context.Context, reg distribution.Namespace, drv driver.StorageDriver, name string, mark func(digest.Digest), rep *Report) error {
	named, err := reference.WithName(name)
	if err != nil {
		return nil
	}
	repo, err := reg.Repository(ctx, named)
	if err != nil {
		return fmt.Errorf("repository %s: %w", name, err)
	}
	ms, err := repo.Manifests(ctx)
	if err != nil {
		return fmt.Errorf("repository %s: %w", name, err)
	}
	me, ok := ms.(distribution.ManifestEnumerator)
	if !ok {
		return errors.New("gc: storage cannot enumerate manifests")
	}
	err = me.Enumerate(ctx, func(d digest.Digest) error {
		rep.Manifests++
		mark(d)
		raw, err := drv.GetContent(ctx, blobDataPath(d))
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
