package cli

import (
	"context"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/ferryvm/ferry/internal/paths"
	"github.com/ferryvm/ferry/internal/registry"
	"github.com/ferryvm/ferry/internal/registry/store"
)

// registryFlags are the flags every `ferry registry` verb shares: where the
// registry's data and metadata live.
type registryFlags struct {
	root   string
	db     string
	config string
	format string
}

func newRegistryCmd(g *globals) *cobra.Command {
	rf := &registryFlags{}
	cmd := &cobra.Command{
		Use:   "registry",
		Short: "Run and administer ferry's multi-tenant OCI registry",
		Long: "ferry registry serves the OCI distribution API with per-organization namespaces.\n" +
			"Organizations and their tokens are managed with the org and token verbs, which\n" +
			"work on the same --root/--db as the server (it need not be running).",
	}
	defRoot := os.Getenv("FERRY_REGISTRY_ROOT")
	if defRoot == "" {
		defRoot = filepath.Join(paths.DefaultRoot, "registry")
	}
	pf := cmd.PersistentFlags()
	pf.StringVar(&rf.root, "root", defRoot, "data directory (storage and the default SQLite db); env FERRY_REGISTRY_ROOT")
	pf.StringVar(&rf.db, "db", "", "metadata database: postgres:// URL or SQLite path (default ROOT/registry.db)")
	pf.StringVar(&rf.config, "config", "", "YAML config file (see docs/registry.md); flags override it")
	cmd.AddCommand(
		newRegistryServeCmd(g, rf),
		newRegistryOrgCmd(g, rf),
		newRegistryTokenCmd(g, rf),
		newRegistryGCCmd(g, rf),
	)
	return cmd
}

// loadConfig merges the config file with the flags that were set.
func (rf *registryFlags) loadConfig(cmd *cobra.Command) (registry.Config, error) {
	var cfg registry.Config
	if rf.config != "" {
		var err error
		if cfg, err = registry.LoadConfig(rf.config); err != nil {
			return cfg, err
		}
	}
	if cfg.Root == "" || cmd.Flags().Changed("root") {
		cfg.Root = rf.root
	}
	if rf.db != "" {
		cfg.DB = rf.db
	}
	if cfg.DB == "" {
		cfg.DB = filepath.Join(cfg.Root, "registry.db")
	}
	return cfg, nil
}

// withStore opens the metadata database named by the flags, runs fn on it
// and closes it.
func (rf *registryFlags) withStore(cmd *cobra.Command, fn func(st *store.Store) error) error {
	st, _, err := rf.openStore(cmd.Context(), cmd)
	if err != nil {
		return err
	}
	defer func() { _ = st.Close() }()
	return fn(st)
}

// openStore opens the metadata database named by the flags.
func (rf *registryFlags) openStore(ctx context.Context, cmd *cobra.Command) (*store.Store, registry.Config, error) {
	cfg, err := rf.loadConfig(cmd)
	if err != nil {
		return nil, cfg, err
	}
	if !store.IsPostgres(cfg.DB) {
		if err := os.MkdirAll(filepath.Dir(cfg.DB), 0o700); err != nil {
			return nil, cfg, err
		}
	}
	st, err := store.Open(ctx, cfg.DB)
	return st, cfg, err
}
