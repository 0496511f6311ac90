package volume

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/ferryvm/ferry/internal/errdefs"
)

// Volume is one volume as ferry's API and CLI show it.
type Volume struct {
	ID        string            `json:"id"` // vol_<hex>
	Name      string            `json:"name"`
	App       string            `json:"app"`
	SizeBytes int64             `json:"size_bytes"` // the file's size, LUKS2 header included
	Encrypted bool              `json:"encrypted"`
	Labels    map[string]string `json:"labels,omitempty"`
	// Anonymous volumes are made for an image's VOLUME entries; they are
	// removed with their machine when it is removed with its volumes
	// (--rm, rm -v) and by prune.
	Anonymous bool   `json:"anonymous,omitempty"`
	State     string `json:"state"`
	// Snapshot is the snapshot the volume was made from, if any.
	Snapshot    string       `json:"snapshot,omitempty"`
	Attachments []Attachment `json:"attachments,omitempty"`
	CreatedAt   time.Time    `json:"created_at"`
	// Path is the volume's file on the host; AllocatedBytes what it
	// occupies there (sparse: what the guest wrote, plus the header).
	Path           string `json:"path"`
	AllocatedBytes int64  `json:"allocated_bytes"`
}

// Attachment is a machine holding a volume: one that mounts it (Active,
// while it runs) or one that would at its next start.
type Attachment struct {
	Machine  string    `json:"machine"`
	ReadOnly bool      `json:"read_only,omitempty"`
	Active   bool      `json:"active,omitempty"`
	Since    time.Time `json:"since"`
}

// Writer returns the machine running with the volume read-write, or "".
func (v *Volume) Writer() string {
	for _, a := range v.Attachments {
		if a.Active && !a.ReadOnly {
			return a.Machine
		}
	}
	return ""
}

// Snapshot is a point-in-time copy of a volume.
type Snapshot struct {
	ID         string    `json:"id"` // vs_<hex>
	Volume     string    `json:"volume"`
	VolumeName string    `json:"volume_name"`
	App        string    `json:"app"`
	SizeBytes  int64     `json:"size_bytes"`
	Encrypted  bool      `json:"encrypted"`
	Method     string    `json:"method"` // reflink or sparse-copy
	State      string    `json:"state"`
	CreatedAt  time.Time `json:"created_at"`
	Path       string    `json:"path"`
	// AllocatedBytes is what the snapshot's file occupies (a reflink
	// shares its extents with the volume: du counts them for both).
	AllocatedBytes int64 `json:"allocated_bytes"`
}

// States. A volume or snapshot is usable only when ready; the others are
// transitions a restarted daemon finishes or rolls back (Open).
const (
	StateCreating   = "creating"
	StateReady      = "created" // Fly's name for a usable volume
	StateExtending  = "extending"
	StateDestroying = "destroying"
)

// Sizes.
const (
	DefaultSize = 1 << 30
	MinSize     = 32 << 20
	MaxSize     = 16 << 40 // mkext4's limit
	sizeAlign   = 1 << 20
)

var nameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$`)

// ValidateName checks a volume name: Docker's volume names, 1 to 63
// characters (no "/", no "..").
func ValidateName(name string) error {
	if !nameRE.MatchString(name) || strings.Contains(name, "..") {
		return fmt.Errorf("volume name %q: use 1 to 63 letters, digits and _ . - (starting with a letter or digit, no ..): %w", name, errdefs.ErrInvalidArgument)
	}
	return nil
}

// ParseSize parses a size as Docker and Fly users write it: bytes, or a
// number with k, m, g, t (powers of 1024, optional "b" or "ib": 10g, 512MiB,
// 1.5GB). The result is rounded up to whole MiB and must lie within
// MinSize..MaxSize.
func ParseSize(s string) (int64, error) {
	bad := func(why string) error {
		return fmt.Errorf("size %q: %s (e.g. 1g, 512m, 10GiB): %w", s, why, errdefs.ErrInvalidArgument)
	}
	t := strings.ToLower(strings.TrimSpace(s))
	t = strings.TrimSuffix(strings.TrimSuffix(t, "b"), "i")
	mult := float64(1)
	if n := len(t); n > 0 {
		if i := strings.IndexByte("kmgt", t[n-1]); i >= 0 {
			mult = float64(int64(1) << (10 * (i + 1)))
			t = t[:n-1]
		}
	}
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || v != v || v <= 0 {
		return 0, bad("not a positive size")
	}
	b := v * mult
	if b > MaxSize {
		return 0, bad("larger than 16 TiB")
	}
	return CheckSize(int64(b))
}

// CheckSize rounds n up to whole MiB and checks it lies within
// MinSize..MaxSize.
func CheckSize(n int64) (int64, error) {
	if n < MinSize || n > MaxSize {
		return 0, fmt.Errorf("size %d bytes: a volume is %d MiB to 16 TiB: %w", n, MinSize>>20, errdefs.ErrInvalidArgument)
	}
	return (n + sizeAlign - 1) &^ (sizeAlign - 1), nil
}

// FormatSize prints n in the largest binary unit that keeps it whole
// (1GiB, 1536MiB).
func FormatSize(n int64) string {
	for _, u := range []struct {
		s string
		b int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n >= u.b && n%u.b == 0 {
			return strconv.FormatInt(n/u.b, 10) + u.s
		}
	}
	return strconv.FormatInt(n, 10) + "B"
}
