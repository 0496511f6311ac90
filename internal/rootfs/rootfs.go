package rootfs

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"go.etcd.io/bbolt"

	"github.com/ferryvm/ferry/internal/errdefs"
	"github.com/ferryvm/ferry/internal/paths"
	"github.com/ferryvm/ferry/internal/rootfs/apply"
)

// ImageLeaser keeps images in the image cache while a base built from
// them exists. internal/image's Store implements it.
type ImageLeaser interface {
	AddLease(ctx context.Context, leaseID string, digest v1.Hash) error
	RemoveLease(ctx context.Context, leaseID string) error
}

// Mode is how a machine's root filesystem is laid out.
type Mode string

const (
	// ModeOverlay is the shared read-only base plus a sparse scratch disk
	// the guest mounts as the overlayfs upper layer.
	ModeOverlay Mode = "overlay"
	// ModePersistent is one writable clone of the base.
	ModePersistent Mode = "persistent"
)

// DefaultScratchSize is the apparent size of a scratch disk.
const DefaultScratchSize = 8 << 30

// Base is a built read-only ext4 base.
type Base struct {
	Digest  v1.Hash   `json:"digest"` // manifest digest of the image
	Path    string    `json:"path"`
	Size    int64     `json:"size"` // apparent bytes (blocks of zeros are holes: allocated can be less)
	Created time.Time `json:"created"`
}

// Disks are the host files a machine's VMM attaches.
type Disks struct {
	Mode Mode `json:"mode"`
	// Base is the shared base, attached read-only (overlay mode only).
	Base string `json:"base,omitempty"`
	// Writable is the scratch disk (overlay) or the clone (persistent).
	Writable string `json:"writable"`
	// Size is the writable disk's apparent size.
	Size int64 `json:"size"`
	// Clone says how a persistent clone was made (reflink or sparse-copy).
	Clone CloneMethod `json:"clone,omitempty"`
}

// Option configures a Manager.
type Option func(*options)

type options struct {
	images      Images
	scratchSize int64
	log         *slog.Logger
	applyOpts   []apply.Option
	limits      apply.Limits
}

// WithScratchSize sets the default apparent size of scratch disks and
// persistent clones (DefaultScratchSize).
func WithScratchSize(n int64) Option { return func(o *options) { o.scratchSize = n } }

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithApplyOptions passes options (apply.WithSpoolMemory, …) to base
// builds, after the limits.
func WithApplyOptions(opts ...apply.Option) Option {
	return func(o *options) { o.applyOpts = append(o.applyOpts, opts...) }
}

// WithLayerLimits sets the limits a base build holds an image's layers
// to (zero fields: apply's defaults); MinFree also bounds the ext4 base.
func WithLayerLimits(l apply.Limits) Option { return func(o *options) { o.limits = l } }

// Manager owns bases and machine root filesystems under one data dir.
type Manager struct {
	db     *bbolt.DB
	root   paths.Root
	leaser ImageLeaser
	o      options

	mu      sync.Mutex
	flights map[string]*flight // base builds in progress, by manifest hex
	busy    map[string]bool    // machines being prepared or released
}

// New opens the rootfs state in db (creating its bucket), removes
// half-built bases and stale temporary files, and returns a Manager.
// leaser may be nil (no image leases are taken).
func New(ctx context.Context, db *bbolt.DB, root paths.Root, leaser ImageLeaser, opts ...Option) (*Manager, error) {
	o := options{scratchSize: DefaultScratchSize, log: slog.Default()}
	for _, opt := range opts {
		opt(&o)
	}
	if o.scratchSize < 16<<20 || o.scratchSize%4096 != 0 {
		return nil, fmt.Errorf("scratch size %d: must be a multiple of 4096 and at least 16 MiB: %w", o.scratchSize, errdefs.ErrInvalidArgument)
	}
	m := &Manager{db: db, root: root, leaser: leaser, o: o, flights: map[string]*flight{}, busy: map[string]bool{}}
	// Scratch disks were once cloned from formatted templates; each is
	// formatted on its own now, and old templates are dead weight.
	_ = os.RemoveAll(m.templates())
	for _, d := range []string{root.Bases(), root.RootfsTmp(), root.Machines()} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("rootfs: %w", err)
		}
	}
	if err := db.Update(func(tx *bbolt.Tx) error { _, err := buckets(tx); return err }); err != nil {
		return nil, fmt.Errorf("rootfs: init db: %w", err)
	}
	// Nothing is in flight yet: everything in tmp/ is stale.
	entries, _ := os.ReadDir(root.RootfsTmp())
	for _, e := range entries {
		_ = os.RemoveAll(filepath.Join(root.RootfsTmp(), e.Name()))
	}
	if _, err := m.GC(ctx); err != nil {
		return nil, err
	}
	return m, nil
}

// templates held formatted scratch templates (before scratch disks were
// formatted per machine); New removes it.
func (m *Manager) templates() string {
	return m.root.ScratchTemplates()
}

func (m *Manager) basePath(hex string) string {
	return filepath.Join(m.root.Bases(), hex+".ext4")
}

func baseLease(hex string) string { return "rootfs/base/" + hex }

func validMachineID(id string) error {
	if id == "" || id == "." || id == ".." || strings.ContainsAny(id, "/\x00") || len(id) > 128 {
		return fmt.Errorf("machine id %q: %w", id, errdefs.ErrInvalidArgument)
	}
	return nil
}
