package registry

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/distribution/distribution/v3/registry/storage/driver/factory"

	"github.com/ferryvm/ferry/internal/registry/gc"
	"github.com/ferryvm/ferry/internal/registry/store"
)

// GC collects unreferenced blobs on the storage cfg names, keeping blobs
// touched within cfg.GCGrace (or opts.Grace when set), and removes the
// repositories of deleted orgs. Each org's links are judged by that org's
// manifests and activity alone. It then records what each repository holds
// (the orgs' usage, for quotas) and forgets what it deleted. It may run
// while servers are serving; one run at a time across every replica
// sharing st (store.TryGCLock): when another holds the lock it returns at
// once with an error wrapping errdefs.ErrConflict.
func GC(ctx context.Context, cfg Config, st *store.Store, opts gc.Options) (gc.Report, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return gc.Report{}, err
	}
	if opts.Grace == 0 {
		opts.Grace = cfg.GCGrace
	}
	unlock, err := st.TryGCLock(ctx)
	if err != nil {
		return gc.Report{}, err
	}
	defer unlock()
	start := time.Now()
	sc := cfg.distributionStorage()
	drv, err := factory.Create(ctx, sc.Type(), sc.Parameters())
	if err != nil {
		return gc.Report{}, fmt.Errorf("gc: storage %s: %w", sc.Type(), err)
	}
	orgs, err := st.Orgs(ctx)
	if err != nil {
		return gc.Report{}, fmt.Errorf("gc: %w", err)
	}
	owners := map[string]string{} // namespace prefix → org id
	for _, o := range orgs {
		owners[NamespaceFor(o.ID).Prefix()] = o.ID
	}
	owner := func(internal string) string {
		if i := strings.Index(internal, "/"); i > 0 {
			return owners[internal[:i+1]]
		}
		return ""
	}
	opts.LiveRepo = func(name string) bool { return owner(name) != "" }
	opts.Owner = owner
	if !opts.DryRun {
		opts.Holdings = func(ctx context.Context, internal string, blobs map[digest.Digest]int64) error {
			orgID := owner(internal)
			name, _ := NamespaceFor(orgID).External(internal)
			held := make(map[string]int64, len(blobs))
			for d, size := range blobs {
				held[d.String()] = size
			}
			return st.SetRepoBlobs(ctx, orgID, name, held, start)
		}
	}
	rep, err := gc.Run(ctx, drv, st, opts) // gc's owners are org ids
	if err != nil || opts.DryRun {
		return rep, err
	}
	// Repositories whose manifests were all deleted leave the catalog.
	for _, internal := range rep.EmptyRepositories {
		orgID := owner(internal)
		if name, ok := NamespaceFor(orgID).External(internal); ok {
			if err := st.RemoveRepo(ctx, orgID, name); err != nil {
				return rep, err
			}
		}
	}
	if err := st.ForgetBlobs(ctx, rep.Deleted...); err != nil {
		return rep, err
	}
	if err := st.ForgetUploads(ctx, start.Add(-cfg.Limits.UploadMaxAge)); err != nil {
		return rep, err
	}
	return rep, st.ForgetBlobActivity(ctx, cfg.nowMinus(opts.Grace))
}
