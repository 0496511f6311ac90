package cli

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/ferryvm/ferry/internal/registry"
	"github.com/ferryvm/ferry/internal/registry/gc"
)

func newRegistryGCCmd(g *globals, rf *registryFlags) *cobra.Command {
	var grace time.Duration
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "gc",
		Short: "Delete blobs no manifest references (safe while pushes are in flight)",
		Long: "gc marks every blob a manifest of a live repository references, removes each org's\n" +
			"links to blobs that org neither references nor uploaded, mounted or found within --grace\n" +
			"(another org's use of the same bytes counts for nothing), and deletes the blobs left\n" +
			"unlinked and unreferenced: a push in flight keeps its blobs. Repositories of deleted orgs\n" +
			"are removed, and each org's storage usage (its quota) is recounted.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, cfg, err := rf.openStore(cmd.Context(), cmd)
			if err != nil {
				return err
			}
			defer func() { _ = st.Close() }()
			rep, err := registry.GC(cmd.Context(), cfg, st, gc.Options{Grace: grace, DryRun: dryRun})
			if err != nil {
				return err
			}
			if rf.format == "json" {
				return json.NewEncoder(g.out).Encode(rep)
			}
			verb := "freed"
			if dryRun {
				verb = "would free"
			}
			_, err = fmt.Fprintf(g.out, "%s %d blobs, %s (%d repositories, %d manifests, %d blobs in use, %d kept as recent, %d orphan links removed, %d repositories of deleted orgs removed)\n",
				verb, rep.BlobsDeleted, humanBytes(rep.BytesFreed), rep.Repositories, rep.Manifests, rep.BlobsMarked, rep.BlobsKeptRecent, rep.LinksRemoved, len(rep.RepositoriesRemoved))
			return err
		},
	}
	cmd.Flags().DurationVar(&grace, "grace", 0, "keep blobs touched within this window (default: config gc_grace, 1h)")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "report what would be freed, delete nothing")
	cmd.Flags().StringVar(&rf.format, "format", "", "output format: json")
	return cmd
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
