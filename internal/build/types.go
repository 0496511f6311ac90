package build

import (
	"context"
	"io"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ferryvm/ferry/internal/build/secretscan"
	"github.com/ferryvm/ferry/internal/guest"
	"github.com/ferryvm/ferry/internal/image"
)

// Request is one `ferry build`.
type Request struct {
	// Dockerfile is the Dockerfile's content; when empty it is read from
	// DockerfilePath in the context (default "Dockerfile").
	Dockerfile     []byte
	DockerfilePath string
	// Context is the directory holding the received build context. Build
	// removes from it what the ignore file excludes.
	Context string
	// Ignore is the ignore file's content when the client sent its own
	// (<Dockerfile>.dockerignore); nil reads <Context>/.dockerignore.
	Ignore    []byte
	Tags      []string
	BuildArgs map[string]string
	Target    string
	NoCache   bool
	// Pull re-pulls base images even when cached.
	Pull   bool
	Labels map[string]string
	// Secrets are --secret values by id; they reach RUN --mount=type=secret
	// and nothing else.
	Secrets map[string][]byte
	// Network is "default" or "none" (every RUN without a network).
	Network  string
	Platform v1.Platform
	// FailOnSecrets makes a secret-scan finding an error.
	FailOnSecrets bool
	// Push pushes every tag once the image is built, with PushAuth (nil:
	// the daemon's keychain).
	Push     bool
	PushAuth authn.Authenticator
}

// Result is what a build produced.
type Result struct {
	ID     v1.Hash  `json:"id"` // manifest digest
	Tags   []string `json:"tags,omitempty"`
	Steps  int      `json:"steps"`
	Cached int      `json:"cached"`
	// Boots counts builder VMs started (0 when every RUN hit the cache).
	Boots    int                  `json:"boots"`
	Findings []secretscan.Finding `json:"findings,omitempty"`
	Pushed   []string             `json:"pushed,omitempty"`
}

// Step states in StepEvent.
const (
	StepRunning = "running"
	StepCached  = "cached"
	StepDone    = "done"
	StepFailed  = "failed"
)

// Event is one progress event of a build.
type Event struct {
	Step    *StepEvent      `json:"step,omitempty"`
	Log     *LogEvent       `json:"log,omitempty"`
	Message string          `json:"message,omitempty"`
	Warning string          `json:"warning,omitempty"`
	Push    *image.Progress `json:"push,omitempty"`
}

// StepEvent is a step starting or ending.
type StepEvent struct {
	ID      int     `json:"id"` // 1.. over the whole build
	Stage   string  `json:"stage"`
	Index   int     `json:"index"` // 1.. within the stage
	Total   int     `json:"total"`
	Text    string  `json:"text"`
	State   string  `json:"state"`
	Seconds float64 `json:"seconds,omitempty"`
	Error   string  `json:"error,omitempty"`
}

// LogEvent is output of a RUN.
type LogEvent struct {
	ID     int    `json:"id"`
	Stream string `json:"stream"` // stdout or stderr
	Data   string `json:"data"`
}

// Images is what a build needs from the image cache (image.Store plus
// blob access).
type Images interface {
	Image(ctx context.Context, ref string) (v1.Image, v1.Hash, error)
	ImageByDigest(ctx context.Context, d v1.Hash) (v1.Image, error)
	OpenBlob(d v1.Hash) (io.ReadCloser, error)
	HasBlob(d v1.Hash) bool
	PutBlob(ctx context.Context, lease string, r io.Reader) (v1.Hash, int64, error)
	PutImage(ctx context.Context, manifest, config []byte, names []string) (image.Summary, error)
	AddLease(ctx context.Context, id string, d v1.Hash) error
	RemoveLease(ctx context.Context, id string) error
	Leases(ctx context.Context) (map[string][]v1.Hash, error)
	GC(ctx context.Context) (*image.GCReport, error)
}

// PruneReport is what a build-cache prune removed.
type PruneReport struct {
	Steps      int   `json:"steps"`       // cache records dropped
	BytesFreed int64 `json:"bytes_freed"` // blob bytes the following GC removed
}

// Puller fetches a base image into the cache.
type Puller interface {
	Pull(ctx context.Context, ref string, progress func(image.Progress)) (v1.Hash, error)
}

// Pusher pushes a cached image by reference, with auth (nil: the
// daemon's keychain): FromStore's image.Store.Push, or the host-local
// mirror's write-back (mirror.WriteBack) when the daemon serves one.
type Pusher interface {
	Push(ctx context.Context, ref string, auth authn.Authenticator, progress func(image.Progress)) (v1.Hash, error)
}

// Runner starts builder VMs.
type Runner interface {
	// Start boots a builder VM on the ext4 base of the image with manifest
	// digest base.
	Start(ctx context.Context, spec SessionSpec) (Session, error)
	// Reap ends builder VMs left by an earlier daemon.
	Reap(ctx context.Context) error
}

// SessionSpec is one builder VM.
type SessionSpec struct {
	Build   string  // build ID, for the VM's name and metadata
	Stage   string  // for messages
	Base    v1.Hash // manifest digest of the stage's root image
	Network bool
}

// Session is a running builder VM: layers and directories by ID.
type Session interface {
	// Load streams a tree into the VM as layer (kind guest.LoadLayer) or
	// directory (guest.LoadDir) id.
	Load(ctx context.Context, kind, id string, tree io.Reader) error
	// Run runs a step and returns its exit code; output goes to stdout
	// and stderr as it comes.
	Run(ctx context.Context, step guest.BuildStep, stdout, stderr io.Writer) (int, error)
	// Diff streams layer id's changes (OCI whiteouts) as a tree.
	Diff(ctx context.Context, id string, w io.Writer) error
	// Save streams directory id as a tree.
	Save(ctx context.Context, id string, w io.Writer) error
	// Close ends the VM.
	Close(ctx context.Context) error
}

// now is the clock (tests pin it).
var now = time.Now
