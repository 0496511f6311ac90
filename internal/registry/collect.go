package registry

import (
	"context"
	"fmt"
	"strings"

	"github.com/distribution/distribution/v3/registry/storage/driver/factory"

	"github.com/ferryvm/ferry/internal/registry/gc"
	"github.com/ferryvm/ferry/internal/registry/store"
)

// GC collects unreferenced blobs on the storage cfg names, keeping blobs
// touched within cfg.GCGrace (or opts.Grace when set), and removes the
// repositories of deleted orgs. It may run while a server is serving.
func GC(ctx context.Context, cfg Config, st *store.Store, opts gc.Options) (gc.Report, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return gc.Report{}, err
	}
	if opts.Grace == 0 {
		opts.Grace = cfg.GCGrace
	}
	sc := cfg.distributionStorage()
	drv, err := factory.Create(ctx, sc.Type(), sc.Parameters())
	if err != nil {
		return gc.Report{}, fmt.Errorf("gc: storage %s: %w", sc.Type(), err)
	}
	orgs, err := st.Orgs(ctx)
	if err != nil {
		return gc.Report{}, fmt.Errorf("gc: %w", err)
	}
	live := map[string]bool{}
	for _, o := range orgs {
		live[NamespaceFor(o.ID).Prefix()] = true
	}
	opts.LiveRepo = func(name string) bool {
		i := strings.Index(name, "/")
		return i > 0 && live[name[:i+1]]
	}
	rep, err := gc.Run(ctx, drv, st, opts)
	if err != nil || opts.DryRun {
		return rep, err
	}
	// Repositories whose manifests were all deleted leave the catalog.
	for _, o := range orgs {
		ns := NamespaceFor(o.ID)
		for _, internal := range rep.EmptyRepositories {
			if name, ok := ns.External(internal); ok {
				if err := st.RemoveRepo(ctx, o.ID, name); err != nil {
					return rep, err
				}
			}
		}
	}
	return rep, st.ForgetBlobActivity(ctx, cfg.nowMinus(opts.Grace))
}
